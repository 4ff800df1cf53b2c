//! SQL text → `db.query.summary`, `db.operation.name`, `db.collection.name`, and sanitised
//! `db.query.text` (semantic conventions v1.44).
//!
//! One small tokenizer serves both jobs. It works on bytes, runs in linear time, and never
//! panics: unterminated strings and comments simply run to the end of the text.
//! Not public: [`db::query`](super::db::query) applies it (the fuzz targets reach it through the
//! `fuzzing` feature).

/// What the conventions derive from a query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuerySummary {
    /// The first operation (`SELECT`, `INSERT`...), uppercase.
    pub operation: Option<String>,
    /// The target when the query touches exactly one table, without quotes.
    pub collection: Option<String>,
    /// Operations and their targets in order, e.g. `SELECT users orders`; at most 255 chars.
    pub summary: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    QuotedIdent,
    Literal,
    Placeholder,
    Comment,
    Space,
    Punct,
}

struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn find(bytes: &[u8], from: usize, pattern: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(pattern.len())
        .position(|w| w == pattern)
        .map(|p| from + p)
}

/// End of a quoted run starting at `start` (the opening quote); a doubled quote escapes.
fn quoted_end(bytes: &[u8], start: usize, close: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        if close == b'\'' && bytes[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
    bytes.len()
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn tokenize(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        let (kind, end) = match b {
            _ if b.is_ascii_whitespace() => {
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                (Kind::Space, j)
            }
            b'-' if next == Some(b'-') => {
                (Kind::Comment, find(bytes, i, b"\n").unwrap_or(bytes.len()))
            }
            b'/' if next == Some(b'*') => (
                Kind::Comment,
                find(bytes, i + 2, b"*/").map_or(bytes.len(), |p| p + 2),
            ),
            b'\'' => (Kind::Literal, quoted_end(bytes, i, b'\'')),
            b'"' => (Kind::QuotedIdent, quoted_end(bytes, i, b'"')),
            b'`' => (Kind::QuotedIdent, quoted_end(bytes, i, b'`')),
            b'[' => (Kind::QuotedIdent, quoted_end(bytes, i, b']')),
            b'$' if next.is_some_and(|n| n.is_ascii_digit()) => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                (Kind::Placeholder, j)
            }
            b'$' => {
                // Dollar-quoted string: $$…$$ or $tag$…$tag$.
                let tag_end = (i + 1..bytes.len())
                    .take_while(|&j| {
                        bytes[j] == b'$' || bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_'
                    })
                    .find(|&j| bytes[j] == b'$');
                match tag_end {
                    Some(t) => {
                        let tag = &bytes[i..=t];
                        (
                            Kind::Literal,
                            find(bytes, t + 1, tag).map_or(bytes.len(), |p| p + tag.len()),
                        )
                    }
                    None => (Kind::Punct, i + 1),
                }
            }
            b'?' => (Kind::Placeholder, i + 1),
            b':' if next.is_some_and(|n| n.is_ascii_alphabetic()) => {
                let mut j = i + 1;
                while j < bytes.len() && is_word_byte(bytes[j]) {
                    j += 1;
                }
                (Kind::Placeholder, j)
            }
            b'0'..=b'9' => (Kind::Literal, number_end(bytes, i)),
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                (Kind::Literal, number_end(bytes, i))
            }
            _ if is_word_byte(b) => {
                let prefixed_string =
                    matches!(b | 0x20, b'x' | b'b' | b'e' | b'n') && next == Some(b'\'');
                if prefixed_string {
                    (Kind::Literal, quoted_end(bytes, i + 1, b'\''))
                } else {
                    let mut j = i;
                    while j < bytes.len() && is_word_byte(bytes[j]) {
                        j += 1;
                    }
                    (Kind::Word, j)
                }
            }
            _ => (Kind::Punct, i + 1),
        };
        tokens.push(Token {
            kind,
            start: i,
            end,
        });
        i = end;
    }
    tokens
}

fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut j = start;
    if bytes[j] == b'0' && matches!(bytes.get(j + 1), Some(b'x' | b'X')) {
        j += 2;
        while j < bytes.len() && bytes[j].is_ascii_hexdigit() {
            j += 1;
        }
        return j;
    }
    while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
        j += 1;
    }
    if matches!(bytes.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(bytes.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        if bytes.get(k).is_some_and(u8::is_ascii_digit) {
            j = k;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
        }
    }
    j
}

/// Replaces literals (strings, numbers, hex and dollar-quoted strings) with `?` and removes
/// comments; placeholders (`$1`, `?`, `:name`), identifiers and keywords stay as written.
pub fn sanitize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    for token in tokenize(sql) {
        match token.kind {
            Kind::Literal => out.push('?'),
            Kind::Comment => {}
            _ => out.push_str(&sql[token.start..token.end]),
        }
    }
    out.trim().to_owned()
}

const OPERATIONS: [&str; 14] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE", "UPSERT", "CREATE", "DROP",
    "ALTER", "TRUNCATE", "CALL", "EXEC", "EXECUTE",
];

/// Words after which the next identifier names a table.
fn introduces_target(word: &str, operation: Option<&str>) -> bool {
    match word {
        "FROM" | "JOIN" | "INTO" => true,
        "UPDATE" | "TRUNCATE" => true,
        "TABLE" | "VIEW" | "INDEX" => {
            matches!(operation, Some("CREATE" | "DROP" | "ALTER" | "TRUNCATE"))
        }
        _ => false,
    }
}

/// Words that may sit between a target-introducing word and the target itself.
fn skippable_before_target(word: &str) -> bool {
    matches!(
        word,
        "IF" | "NOT" | "EXISTS" | "ONLY" | "TABLE" | "LATERAL" | "IGNORE"
    )
}

/// Reads `sql` for the span name and `db.*` attributes.
pub fn summarize(sql: &str) -> QuerySummary {
    let tokens: Vec<Token> = tokenize(sql)
        .into_iter()
        .filter(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
        .collect();
    let text = |t: &Token| &sql[t.start..t.end];
    let mut parts: Vec<(String, Vec<String>)> = Vec::new();
    let mut expecting_target = false;
    let mut after_target_in_from = false;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let mut pushed_target = false;
        match token.kind {
            Kind::Word => {
                let upper = text(token).to_ascii_uppercase();
                let operation = parts.last().map(|(op, _)| op.as_str());
                if expecting_target && skippable_before_target(&upper) {
                    i += 1;
                    continue;
                }
                if OPERATIONS.contains(&upper.as_str()) && !expecting_target {
                    parts.push((upper.clone(), Vec::new()));
                    expecting_target = introduces_target(&upper, Some(&upper));
                    after_target_in_from = false;
                } else if introduces_target(&upper, operation) {
                    expecting_target = true;
                    after_target_in_from = false;
                } else if expecting_target {
                    push_target(&mut parts, text(token));
                    expecting_target = false;
                    after_target_in_from = true;
                    pushed_target = true;
                }
            }
            Kind::QuotedIdent if expecting_target => {
                push_target(&mut parts, text(token));
                expecting_target = false;
                after_target_in_from = true;
                pushed_target = true;
            }
            Kind::Punct if text(token) == "," && after_target_in_from => {
                expecting_target = true;
            }
            Kind::Punct if text(token) == "(" || text(token) == ")" || text(token) == ";" => {
                expecting_target = false;
                after_target_in_from = false;
            }
            _ => {}
        }
        // A qualified name (schema.table) continues the target just pushed.
        if pushed_target && tokens.get(i + 1).is_some_and(|t| text(t) == ".") {
            if let Some(next) = tokens
                .get(i + 2)
                .filter(|t| matches!(t.kind, Kind::Word | Kind::QuotedIdent))
            {
                if let Some(last) = parts.last_mut().and_then(|(_, targets)| targets.last_mut()) {
                    last.push('.');
                    last.push_str(&unquote(text(next)));
                }
                i += 2;
                continue;
            }
        }
        i += 1;
    }
    let operation = parts.first().map(|(op, _)| op.clone());
    let targets: Vec<&String> = parts.iter().flat_map(|(_, t)| t).collect();
    let collection = match targets.as_slice() {
        [only] => Some((*only).clone()),
        _ => None,
    };
    let has_targets = !targets.is_empty();
    let mut summary = String::new();
    for (op, targets) in &parts {
        if has_targets && targets.is_empty() {
            continue;
        }
        for word in std::iter::once(op).chain(targets) {
            if summary.len() + word.len() + 1 > 255 {
                break;
            }
            if !summary.is_empty() {
                summary.push(' ');
            }
            summary.push_str(word);
        }
    }
    QuerySummary {
        operation,
        collection,
        summary: (!summary.is_empty()).then_some(summary),
    }
}

fn unquote(identifier: &str) -> String {
    let trimmed = identifier
        .strip_prefix(['"', '`', '['])
        .unwrap_or(identifier);
    trimmed
        .strip_suffix(['"', '`', ']'])
        .unwrap_or(trimmed)
        .to_owned()
}

fn push_target(parts: &mut [(String, Vec<String>)], identifier: &str) {
    if let Some((_, targets)) = parts.last_mut() {
        targets.push(unquote(identifier));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(sql: &str) -> (Option<String>, Option<String>, Option<String>) {
        let s = summarize(sql);
        (s.operation, s.collection, s.summary)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn a_join_is_summarised_and_literals_sanitised() {
        let s = summarize(r#"SELECT * FROM "users" u JOIN orders o ON o.user_id = u.id"#);
        assert_eq!(s.summary.as_deref(), Some("SELECT users orders"));
        assert_eq!(
            sanitize("SELECT * FROM t WHERE a = 'x' AND b > 10"),
            "SELECT * FROM t WHERE a = ? AND b > ?"
        );
    }

    #[test]
    fn summaries() {
        /// (sql, operation, collection, summary)
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let cases: &[Case] = &[
            (
                "SELECT * FROM users WHERE id = 1",
                Some("SELECT"),
                Some("users"),
                Some("SELECT users"),
            ),
            (
                "select id from \"Users\"",
                Some("SELECT"),
                Some("Users"),
                Some("SELECT Users"),
            ),
            ("  (SELECT 1)", Some("SELECT"), None, Some("SELECT")),
            (
                "INSERT INTO \"orders\" (a) VALUES (1)",
                Some("INSERT"),
                Some("orders"),
                Some("INSERT orders"),
            ),
            (
                "UPDATE accounts SET x = 'y'",
                Some("UPDATE"),
                Some("accounts"),
                Some("UPDATE accounts"),
            ),
            (
                "DELETE FROM public.sessions WHERE t < 5",
                Some("DELETE"),
                Some("public.sessions"),
                Some("DELETE public.sessions"),
            ),
            (
                "SELECT a FROM t1 UNION SELECT b FROM t2",
                Some("SELECT"),
                None,
                Some("SELECT t1 SELECT t2"),
            ),
            (
                "WITH x AS (SELECT 1) SELECT * FROM x",
                Some("SELECT"),
                Some("x"),
                Some("SELECT x"),
            ),
            (
                "SELECT * FROM a JOIN b ON a.id = b.id",
                Some("SELECT"),
                None,
                Some("SELECT a b"),
            ),
            (
                "SELECT * FROM a, b WHERE a.x = b.y",
                Some("SELECT"),
                None,
                Some("SELECT a b"),
            ),
            (
                "SELECT * FROM a AS x LEFT OUTER JOIN b y ON x.i = y.i",
                Some("SELECT"),
                None,
                Some("SELECT a b"),
            ),
            (
                "-- why\n/* who */ SELECT 1 FROM dual",
                Some("SELECT"),
                Some("dual"),
                Some("SELECT dual"),
            ),
            ("", None, None, None),
            ("   \n\t", None, None, None),
            (
                "SELECT 'unterminated FROM x",
                Some("SELECT"),
                None,
                Some("SELECT"),
            ),
            (
                "SELECT * FROM `café`",
                Some("SELECT"),
                Some("café"),
                Some("SELECT café"),
            ),
            (
                "SELECT * FROM [dbo].[Orders]",
                Some("SELECT"),
                Some("dbo.Orders"),
                Some("SELECT dbo.Orders"),
            ),
            (
                "CREATE TABLE IF NOT EXISTS items (id int)",
                Some("CREATE"),
                Some("items"),
                Some("CREATE items"),
            ),
            (
                "DROP TABLE IF EXISTS items",
                Some("DROP"),
                Some("items"),
                Some("DROP items"),
            ),
            (
                "TRUNCATE TABLE logs",
                Some("TRUNCATE"),
                Some("logs"),
                Some("TRUNCATE logs"),
            ),
            (
                "INSERT INTO archive SELECT * FROM orders",
                Some("INSERT"),
                None,
                Some("INSERT archive SELECT orders"),
            ),
            (
                "SELECT * FROM (SELECT * FROM inner_t) sub",
                Some("SELECT"),
                Some("inner_t"),
                Some("SELECT inner_t"),
            ),
            (
                "MERGE INTO target USING src ON 1=1",
                Some("MERGE"),
                Some("target"),
                Some("MERGE target"),
            ),
            ("BEGIN", None, None, None),
            ("/* unterminated comment SELECT * FROM x", None, None, None),
            (
                "SELECT * FROM users WHERE name = 'O''Brien' FROM",
                Some("SELECT"),
                Some("users"),
                Some("SELECT users"),
            ),
        ];
        for (sql, op, coll, sum) in cases {
            assert_eq!(
                summary(sql),
                (
                    op.map(String::from),
                    coll.map(String::from),
                    sum.map(String::from)
                ),
                "{sql:?}"
            );
        }
    }

    #[test]
    fn sanitising_replaces_literals_only() {
        let cases = [
            (
                "SELECT * FROM t WHERE name = 'O''Brien'",
                "SELECT * FROM t WHERE name = ?",
            ),
            (
                "SELECT col2 FROM t1 WHERE id = $1",
                "SELECT col2 FROM t1 WHERE id = $1",
            ),
            (
                "SELECT * FROM t WHERE x > -5 AND y < 1.5e3",
                "SELECT * FROM t WHERE x > -? AND y < ?",
            ),
            ("SELECT x'DEADBEEF', 0x1F, E'a\\'b'", "SELECT ?, ?, ?"),
            ("SELECT $$ a 'b' $$, $tag$x$tag$", "SELECT ?, ?"),
            ("SELECT a -- secret 42\nFROM t /* 7 */", "SELECT a \nFROM t"),
            (
                "UPDATE t SET v = ? WHERE k = :key",
                "UPDATE t SET v = ? WHERE k = :key",
            ),
            ("SELECT 'unterminated", "SELECT ?"),
            ("", ""),
        ];
        for (sql, expected) in cases {
            assert_eq!(sanitize(sql), expected, "{sql:?}");
        }
        assert_eq!(some("x"), Some("x".to_string()));
    }

    #[test]
    fn long_summaries_are_capped() {
        let tables: Vec<String> = (0..200).map(|i| format!("table_{i}")).collect();
        let sql = format!("SELECT * FROM {}", tables.join(", "));
        assert!(summarize(&sql).summary.unwrap().len() <= 255);
    }
}
