// Syntax highlighting of .stratum files for CodeMirror 5's simple mode: item keywords, properties, strings
// (including """triple-quoted""" SQL), numbers with their units, comments, and the words of expressions.
CodeMirror.defineSimpleMode("stratum", {
  start: [
    { regex: /#.*/, token: "comment" },
    { regex: /"""/, token: "string", next: "tripleString" },
    { regex: /"(?:[^\\"]|\\.)*?(?:"|$)/, token: "string" },
    {
      regex: /^(\s*)(app|import|schema|node|pool|link|source|stream|sink|dataset|batch|model|service|tool|dashboard|panel|policy)\b/,
      token: [null, "keyword"],
    },
    {
      regex: /\b(candidates|slo|scale|select|window|join|keep|where|from|on|by|within|over|last|every|cron|into|query|in|and|or|not|if|then|else)\b/,
      token: "keyword",
    },
    { regex: /\b(true|false|null)\b/, token: "atom" },
    { regex: /\b(edge|fog|cloud)\b/, token: "builtin" },
    {
      regex: /-?\d+(?:\.\d+)?(?:\s*(?:ms|s|min|h|d|B|KB|KiB|MB|MiB|GB|GiB|TB|TiB|Mbit|Gbit|kbit|bit|%)(?:\/s)?)?\b/,
      token: "number",
    },
    { regex: /[A-Za-z_][A-Za-z0-9_]*(?=\s*=)/, token: "attribute" },
    { regex: /[A-Za-z_][A-Za-z0-9_]*(?=\s*\()/, token: "variable-2" },
    { regex: /[-+*\/<>=!]+|->/, token: "operator" },
    { regex: /[{\[(]/, indent: true },
    { regex: /[}\])]/, dedent: true },
    { regex: /[A-Za-z_][A-Za-z0-9_]*/, token: "variable" },
  ],
  tripleString: [
    { regex: /.*?"""/, token: "string", next: "start" },
    { regex: /.*/, token: "string" },
  ],
  meta: { lineComment: "#", electricChars: "}]" },
});
