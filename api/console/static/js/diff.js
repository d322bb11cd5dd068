// A line diff (longest common subsequence), enough for flow revisions of a few hundred lines.

export function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ op: " ", text: a[i], left: i + 1, right: j + 1 });
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
      out.push({ op: "-", text: a[i], left: i + 1 });
      i++;
    } else {
      out.push({ op: "+", text: b[j], right: j + 1 });
      j++;
    }
  }
  for (; i < n; i++) out.push({ op: "-", text: a[i], left: i + 1 });
  for (; j < m; j++) out.push({ op: "+", text: b[j], right: j + 1 });
  return out;
}
