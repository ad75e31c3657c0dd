// A small SQL tokenizer for highlighting: comments, strings, quoted names,
// numbers, keywords, function names and operators. It never fails: text it
// does not know is plain.

const KEYWORDS = new Set(`
ADD ALL ALTER AND ANY ARRAY AS ASC AT BEGIN BETWEEN BIGINT BOOLEAN BRANCH BUCKET BY BYTES CALL CASCADE CASE CAST
CDC CHAR COLUMN COMMENT COMMIT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIMESTAMP DATABASE DATABASES DATE DECIMAL
DEFAULT DELETE DESC DESCRIBE DISTINCT DOUBLE DROP ELSE END ENFORCED EXCEPT EXISTS EXPLAIN FALSE FETCH FILTER FIRST
FLOAT FOLLOWING FOR FROM FULL GROUP HAVING IF IN INNER INSERT INT INTEGER INTERSECT INTERVAL INTO IS JOB JOBS JOIN
KEY LAST LATERAL LEFT LIKE LIMIT LOCAL MAP MATCHED MERGE NOT NULL NULLS OF OFFSET ON OR ORDER OUTER OVER OVERWRITE
PARTITION PARTITIONED PARTITIONS PRECEDING PRIMARY RANGE RECURSIVE RENAME REPLACE RESET RESUME RIGHT ROLLBACK ROW
ROWS SCHEMA SCHEMAS SELECT SET SHOW SMALLINT STRING SUSPEND SYSTEM_TIME TABLE TABLES TAG THEN TIME TIMESTAMP
TINYINT TO TRUE TRUNCATE UNBOUNDED UNION UNIQUE UPDATE USE USING VALUES VARCHAR VERSION VIEW WHEN WHERE WINDOW WITH
WITHOUT ZONE ANALYZE VERBOSE
`.trim().split(/\s+/));

const RULES = [
  ["com", /--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y],
  ["str", /'(?:[^']|'')*(?:'|$)/y],
  ["id", /"(?:[^"]|"")*(?:"|$)|`[^`]*(?:`|$)/y],
  ["num", /\b\d+(?:\.\d*)?(?:[eE][+-]?\d+)?\b|\.\d+\b/y],
  ["word", /[A-Za-z_][A-Za-z0-9_$]*/y],
  ["op", /<>|!=|<=|>=|\|\||::|[-+*\/%=<>(),;.\[\]]/y],
  ["ws", /\s+/y],
];

/** The tokens of `text`: [{kind, text}], covering every character. */
export function tokens(text) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    let matched = false;
    for (const [kind, re] of RULES) {
      re.lastIndex = i;
      const m = re.exec(text);
      if (m && m[0].length > 0) {
        let k = kind;
        if (kind === "word") {
          const upper = m[0].toUpperCase();
          if (KEYWORDS.has(upper)) k = "kw";
          else if (/^\s*\(/.test(text.slice(i + m[0].length, i + m[0].length + 8))) k = "fn";
          else k = "plain";
        }
        out.push({ kind: k, text: m[0] });
        i += m[0].length;
        matched = true;
        break;
      }
    }
    if (!matched) {
      out.push({ kind: "plain", text: text[i] });
      i += 1;
    }
  }
  return out;
}

function escapeHtml(s) {
  return s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
}

/** `text` as highlighted HTML. */
export function highlight(text) {
  let html = "";
  for (const t of tokens(text)) {
    const e = escapeHtml(t.text);
    html += t.kind === "plain" || t.kind === "ws" ? e : `<span class="tok-${t.kind}">${e}</span>`;
  }
  // A trailing newline needs a character after it to take up a line.
  return html + (text.endsWith("\n") ? " " : "");
}

/** Whether a statement (its first keyword) returns rows to chart. */
export function firstKeyword(text) {
  const t = tokens(text).find((t) => t.kind !== "ws" && t.kind !== "com");
  return t ? t.text.toUpperCase() : "";
}
