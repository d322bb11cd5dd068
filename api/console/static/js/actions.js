// Safe actions: each asks first and says what will happen, disables its buttons while the request
// runs, and sends an Idempotency-Key so a double-click or a retried request acts once.

import { request } from "./api.js";
import { errorBox, h, mount } from "./dom.js";

// A random key from getRandomValues (randomUUID needs a secure context; a console on plain http is not one).
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// A button that runs `method path` after `confirmText` is accepted. `group` is the set of buttons that
// are disabled together (one execution's actions); `done(answer)` runs after success.
// The key is made once per button: a second click of a double-click carries the same key, so the
// server answers it with the first click's execution instead of making another.
export function actionButton({ label, id, cls, method, path, json, confirmText, group, status, done }) {
  const key = newKey();
  const button = h("button", { id, class: cls, type: "button" }, label);
  button.addEventListener("click", async () => {
    if (group.busy) return;
    const text = typeof confirmText === "function" ? confirmText() : confirmText;
    if (text === null) return;
    if (text && !confirm(text)) return;
    group.busy = true;
    for (const b of group.buttons) b.disabled = true;
    mount(status, h("span", { class: "muted" }, `${label}…`));
    try {
      const answer = await request(method, path, { json: typeof json === "function" ? json() : json, headers: { "Idempotency-Key": key } });
      mount(status);
      await done(answer);
    } catch (e) {
      mount(status, errorBox(e));
    } finally {
      group.busy = false;
      for (const b of group.buttons) b.disabled = b.dataset.off === "true";
    }
  });
  group.buttons.push(button);
  return button;
}

export const actionGroup = () => ({ busy: false, buttons: [] });
