// Everything the console's flow editor takes from npm, re-exported from one module.
// Only names listed here end up in api/console/static/vendor/codemirror.js (esbuild drops the rest).

export { EditorState, EditorSelection, StateEffect, StateField, Compartment } from "@codemirror/state";
export {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection,
  highlightSpecialChars, rectangularSelection, dropCursor, Decoration, gutter, GutterMarker,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, foldGutter, foldKeymap, syntaxTree,
  indentUnit,
} from "@codemirror/language";
export {
  autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap, startCompletion, completionStatus,
  currentCompletions,
} from "@codemirror/autocomplete";
export { linter, lintGutter, lintKeymap, setDiagnostics, forceLinting, diagnosticCount } from "@codemirror/lint";
export { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
export { yaml } from "@codemirror/lang-yaml";
export { parseDocument, LineCounter, isMap, isSeq, isScalar, isPair } from "yaml";
