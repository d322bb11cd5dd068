// The flow source editor: CodeMirror 6 (vendored in /ui/static/vendor/, built from console-src/) with YAML
// highlighting, completion from the task catalogue, and the validator's problems as lint diagnostics:
// a gutter mark and a tinted line per error, the offending text underlined from its column.

import {
  EditorSelection, EditorState, EditorView, StateEffect, StateField, Decoration, keymap, lineNumbers, highlightActiveLine,
  highlightActiveLineGutter, drawSelection, highlightSpecialChars, history, historyKeymap, defaultKeymap,
  indentWithTab, syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, foldGutter, foldKeymap,
  autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap, lintGutter, lintKeymap, setDiagnostics,
  searchKeymap, highlightSelectionMatches, indentUnit, yaml,
} from "/ui/static/vendor/codemirror.js";
import { flowCompletions } from "./completion.js";

export { parseDocument } from "/ui/static/vendor/codemirror.js"; // the YAML parser the topology reads the text with

const setErrorLines = StateEffect.define();

// Lines holding an error: a class for the tint and the line number as an attribute (what a test or a
// stylesheet can find without knowing CodeMirror's internals).
const errorLines = StateField.define({
  create: () => Decoration.none,
  update(lines, tr) {
    lines = lines.map(tr.changes);
    for (const effect of tr.effects) {
      if (effect.is(setErrorLines)) {
        lines = Decoration.set(effect.value.map(({ from, line }) =>
          Decoration.line({ class: "cm-errorLine", attributes: { "data-error-line": String(line) } }).range(from)));
      }
    }
    return lines;
  },
  provide: (field) => EditorView.decorations.from(field),
});

// A position from the validator's 1-based line and column, clamped to the document as it is now.
function position(doc, line, column) {
  const at = doc.line(Math.min(Math.max(line, 1), doc.lines));
  return { at, from: at.from + Math.min(Math.max((column || 1) - 1, 0), at.length) };
}

// Underline from the column to the end of its token; the whole line when there is no column; at least one
// character, so that an error at the end of a line (a missing value) still shows.
function diagnostic(doc, problem, severity) {
  const { at, from } = position(doc, problem.line, problem.column);
  let start = problem.column ? from : at.from;
  let end = problem.column ? from : at.to;
  // A token ends at a space, or at a key's colon (`mesage: x` marks `mesage`).
  while (end < at.to && !/^(\s|:(\s|$))/.test(doc.sliceString(end, Math.min(end + 2, at.to)))) end++;
  if (end === start) {
    if (end < at.to) end++;
    else if (start > at.from) start--;
  }
  const where = problem.path ? `${problem.path}: ` : "";
  const found = { from: start, to: end, severity, message: `${where}${problem.message}`, source: "validate" };
  // The validator's closest known name, as a one-click fix when it replaces the marked token.
  if (problem.suggestion && problem.column && end > start) {
    found.message += ` (did you mean ${problem.suggestion}?)`;
    found.actions = [{ name: `Use ${problem.suggestion}`, apply: (view, from, to) => view.dispatch({ changes: { from, to, insert: problem.suggestion } }) }];
  }
  return found;
}

// Enter in YAML: the new line starts where the current one's keys do (inside a list item, at the item's keys),
// one level deeper after a line that opens a block (`tasks:`). CodeMirror's YAML indenter guesses otherwise.
function yamlNewline(view) {
  const { state } = view;
  view.dispatch(state.update(state.changeByRange((range) => {
    const line = state.doc.lineAt(range.from);
    const before = line.text.slice(0, range.from - line.from);
    const item = /^\s*-\s+/.exec(before);
    let indent = item ? " ".repeat(item[0].length) : /^\s*/.exec(before)[0];
    if (/:\s*$/.test(before)) indent += "  ";
    const insert = `\n${indent}`;
    return { changes: { from: range.from, to: range.to, insert }, range: EditorSelection.cursor(range.from + insert.length) };
  }), { scrollIntoView: true, userEvent: "input" }));
  return true;
}

export function codeEditor({ source, readOnly, onChange, onSave }) {
  const view = new EditorView({
    parent: document.createElement("div"),
    state: EditorState.create({
      doc: source,
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), foldGutter(), lintGutter(), highlightSpecialChars(), history(),
        drawSelection(), indentOnInput(), bracketMatching(), closeBrackets(), highlightActiveLine(),
        highlightSelectionMatches(), syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        indentUnit.of("  "), EditorState.tabSize.of(2), yaml(), errorLines,
        autocompletion({ override: [flowCompletions], activateOnTypingDelay: 50 }),
        keymap.of([
          // Ctrl/Cmd+S saves the flow (not the browser's "save page"); first, so nothing else takes it.
          { key: "Mod-s", preventDefault: true, run: () => { onSave(); return true; } },
          { key: "Enter", run: yamlNewline },
          ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap,
          ...completionKeymap, ...lintKeymap, indentWithTab,
        ]),
        // The page's CSP admits CodeMirror's <style> element only with the nonce the server put in the page.
        EditorView.cspNonce.of(document.querySelector("meta[name=csp-nonce]")?.content || ""),
        EditorState.readOnly.of(readOnly),
        EditorView.editable.of(!readOnly),
        EditorView.contentAttributes.of({ "aria-label": "Flow source (YAML)", spellcheck: "false" }),
        EditorView.updateListener.of((update) => { if (update.docChanged) onChange(); }),
      ],
    }),
  });
  return {
    view,
    dom: view.dom,
    text: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    // Errors (with line and column) and warnings (the validator's text, which names its line) as diagnostics.
    showProblems(errors, warnings) {
      const doc = view.state.doc;
      const located = errors.filter((e) => e.line);
      const diagnostics = [
        ...located.map((e) => diagnostic(doc, e, "error")),
        ...warnings.filter((w) => w.line).map((w) => diagnostic(doc, w, "warning")),
      ];
      const lines = [...new Set(located.map((e) => Math.min(e.line, doc.lines)))].sort((a, b) => a - b)
        .map((line) => ({ line, from: doc.line(line).from }));
      view.dispatch(setDiagnostics(view.state, diagnostics), { effects: setErrorLines.of(lines) });
    },
    // Caret at the error (its column, or the whole line selected), scrolled to the middle of the editor.
    gotoLine(line, column) {
      const { at, from } = position(view.state.doc, line, column);
      view.dispatch({
        selection: column ? { anchor: from } : { anchor: at.from, head: at.to },
        effects: EditorView.scrollIntoView(from, { y: "center" }),
      });
      view.focus();
    },
  };
}
