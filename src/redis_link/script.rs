//! Lua scripts whose KEYS and ARGV have names. [`lua_script!`] declares a script's signature
//! once, as a struct its caller fills field by field; the struct sends the keys and arguments
//! in the declared order, and the script text opens with the same names bound as Lua locals
//! (`local record, lease = KEYS[1], KEYS[2]`). So neither side counts positions, and a script
//! body that reads a name its signature (or the layout prepended to it) does not declare fails
//! [`LuaScript::check`], and would fail in Redis too (a script may not read a global).

use redis::Script;

/// A script of a [`lua_script!`] signature: its text and the `redis::Script` that runs it.
pub struct LuaScript {
    pub name: &'static str,
    /// The whole text Redis runs: flags, the names, the shared fragments, the body.
    pub text: String,
    /// What the files hold (fragments and body), without the generated names: positions
    /// (`KEYS[1]`) have no place here.
    written: String,
    script: Script,
}

impl LuaScript {
    /// Assembles `parts` (an optional `#!lua flags=...` line first, then the prepended
    /// fragments and the body, in order) behind the locals that name `keys` and `args`. A
    /// script that takes more than these (one record per write of a batch) reads the rest
    /// from `KEYS[FIRST_MORE_KEY + i]` and `ARGV[FIRST_MORE_ARG + i]`.
    pub fn new(
        name: &'static str,
        keys: &[&str],
        args: &[&str],
        layout: &str,
        parts: &[&str],
    ) -> Self {
        let (flags, parts) = match parts.split_first() {
            Some((first, rest)) if first.starts_with("#!lua") => (*first, rest),
            _ => ("", parts),
        };
        let bind = |names: &[&str], table: &str| {
            if names.is_empty() {
                return String::new();
            }
            let values: Vec<String> = (1..=names.len()).map(|i| format!("{table}[{i}]")).collect();
            format!("local {} = {}\n", names.join(", "), values.join(", "))
        };
        let written = parts.concat();
        let text = format!(
            "{flags}-- {name}: generated from its signature (src/redis_link/script.rs)\n\
             {}{}local FIRST_MORE_KEY, FIRST_MORE_ARG = {}, {}\n{layout}{written}",
            bind(keys, "KEYS"),
            bind(args, "ARGV"),
            keys.len() + 1,
            args.len() + 1,
        );
        let script = Script::new(&text);
        Self {
            name,
            text,
            written,
            script,
        }
    }

    pub fn script(&self) -> &Script {
        &self.script
    }

    /// What is wrong with the script's text, if anything: a position where a name belongs, a
    /// name nothing declares, or one of `reserved` (the layout's field names and values, which
    /// scripts take from the names the layout binds) written as a string literal.
    pub fn check(&self, reserved: &[&str]) -> Result<(), String> {
        let mut wrong = Vec::new();
        let code = strip_comments_and_strings(&self.written, |literal| {
            if reserved.contains(&literal) {
                wrong.push(format!(
                    "the literal '{literal}' (use the layout's name for it)"
                ));
            }
        });
        for table in ["KEYS[", "ARGV["] {
            for (at, _) in code.match_indices(table) {
                if code[at + table.len()..].starts_with(|c: char| c.is_ascii_digit()) {
                    wrong.push(format!("{table}<n>] (name it in the script's signature)"));
                }
            }
        }
        // The flags line (`#!lua flags=...`) is not Lua.
        let lua = match self.text.split_once('\n') {
            Some((flags, rest)) if flags.starts_with("#!") => rest,
            _ => &self.text,
        };
        let undeclared = undeclared_names(&strip_comments_and_strings(lua, |_| {}));
        wrong.extend(
            undeclared
                .into_iter()
                .map(|n| format!("undeclared name {n}")),
        );
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", self.name, wrong.join("; ")))
        }
    }
}

/// Declares a Lua script's signature: a struct with one `&str` field per KEYS entry and one
/// typed field per ARGV entry, in order, and the [`LuaScript`] assembled from `layout` (Lua
/// prepended to every script of the caller's layout) and the parts.
macro_rules! lua_script {
    (
        $(#[$doc:meta])*
        $vis:vis struct $name:ident<$lt:lifetime> = $layout:expr, [$($part:expr),* $(,)?] {
            keys { $($key:ident),* $(,)? }
            args { $($arg:ident : $ty:ty),* $(,)? }
        }
    ) => {
        $(#[$doc])*
        $vis struct $name<$lt> {
            $(pub $key: &$lt str,)*
            $(pub $arg: $ty,)*
        }

        impl<$lt> $name<$lt> {
            #[allow(dead_code)]
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            pub fn lua() -> &'static $crate::redis_link::LuaScript {
                static SCRIPT: std::sync::LazyLock<$crate::redis_link::LuaScript> =
                    std::sync::LazyLock::new(|| {
                        $crate::redis_link::LuaScript::new(
                            stringify!($name),
                            &[$(stringify!($key)),*],
                            &[$(stringify!($arg)),*],
                            &$layout,
                            &[$(&$part),*],
                        )
                    });
                &SCRIPT
            }

            /// The keys and arguments in the script's order, ready to send (a script that takes
            /// more appends them).
            pub fn invocation(&self) -> redis::ScriptInvocation<'static> {
                #[allow(unused_mut)]
                let mut invocation = Self::lua().script().prepare_invoke();
                $(invocation.key(self.$key);)*
                $(invocation.arg(&self.$arg);)*
                invocation
            }
        }
    };
}
pub(crate) use lua_script;

/// `lua` with its comments removed and each string literal's contents passed to `literal` and
/// removed (the quotes stay, empty). Long strings (`[[...]]`) are not used by our scripts.
fn strip_comments_and_strings(lua: &str, mut literal: impl FnMut(&str)) -> String {
    let mut out = String::with_capacity(lua.len());
    let mut chars = lua.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '-' if lua[at..].starts_with("--") => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '\'' | '"' => {
                let start = at + 1;
                let mut end = lua.len();
                while let Some((i, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        end = i;
                        break;
                    }
                }
                literal(&lua[start..end]);
                out.push(c);
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// What Lua and Redis give every script.
const GIVEN: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if", "in", "local",
    "nil", "not", "or", "repeat", "return", "then", "true", "until", "while", "redis", "cjson",
    "string", "table", "math", "tonumber", "tostring", "ipairs", "pairs", "type", "error",
    "unpack", "select", "KEYS", "ARGV",
];

/// The names `code` (comments and strings removed) reads that neither Lua gives nor the code
/// declares (`local`, `local function`, function parameters, `for` variables), in the order
/// first read. Fields (after `.` or `:`, not `..`) are not names.
fn undeclared_names(code: &str) -> Vec<String> {
    // Each word, with the last character before it that is not blank.
    let mut words: Vec<(Option<char>, &str, bool)> = Vec::new(); // (before, word, is a field)
    let mut start = None;
    for (at, c) in code.char_indices().chain([(code.len(), ' ')]) {
        let word_char = c.is_ascii_alphanumeric() || c == '_';
        match (start, word_char) {
            (None, true) => start = Some(at),
            (Some(from), false) => {
                let before = code[..from].trim_end();
                let field =
                    before.ends_with(':') || (before.ends_with('.') && !before.ends_with(".."));
                words.push((before.chars().last(), &code[from..at], field));
                start = None;
            }
            _ => {}
        }
    }
    let mut declared: Vec<&str> = GIVEN.to_vec();
    // After `local` or `for`, names are declared while commas separate them; after `function`,
    // its name and its parameters up to the closing parenthesis.
    let (mut declaring, mut in_params) = (false, false);
    for (i, &(_, word, _)) in words.iter().enumerate() {
        match word {
            "local" | "for" => declaring = true,
            "function" => (declaring, in_params) = (true, true),
            _ if declaring => {
                declared.push(word);
                declaring = match words.get(i + 1).and_then(|(before, ..)| *before) {
                    Some(',') => true,
                    Some('(') => in_params,
                    _ => false,
                };
                in_params &= declaring;
            }
            _ => {}
        }
    }
    let mut undeclared: Vec<String> = Vec::new();
    for (_, word, field) in words {
        let is_name = !field && !word.starts_with(|c: char| c.is_ascii_digit());
        if is_name && !declared.contains(&word) && !undeclared.iter().any(|u| u == word) {
            undeclared.push(word.to_owned());
        }
    }
    undeclared
}

#[cfg(test)]
mod tests {
    use super::{LuaScript, strip_comments_and_strings, undeclared_names};

    #[test]
    fn names_read_but_never_declared_are_found() {
        let code = strip_comments_and_strings(
            "local a, b = KEYS[1], ARGV[1]\n\
             local function f(x, y) return x .. y .. string.rep('z', 2) end\n\
             for i, v in ipairs({}) do f(v, i) end\n\
             for n = 1, 3 do a = a .. n end\n\
             redis.call('HSET', a, missing, b) -- comment names nothing: ghost\n",
            |_| {},
        );
        assert_eq!(undeclared_names(&code), vec!["missing"]);
    }

    #[test]
    fn positions_reserved_literals_and_undeclared_names_fail_the_check() {
        let good = LuaScript::new(
            "Good",
            &["record"],
            &["data"],
            "local DATA = 'd'\n",
            &[
                "#!lua flags=allow-oom\n",
                "redis.call('HSET', record, DATA, data)\n",
            ],
        );
        assert!(good.text.starts_with("#!lua flags=allow-oom\n"));
        assert_eq!(good.check(&["d"]), Ok(()));
        let bad = LuaScript::new(
            "Bad",
            &["record"],
            &[],
            "",
            &["redis.call('HSET', KEYS[1], 'd', ARGV[1], extension)\n"],
        );
        let wrong = bad.check(&["d"]).unwrap_err();
        for expected in ["'d'", "KEYS[<n>]", "ARGV[<n>]", "undeclared name extension"] {
            assert!(wrong.contains(expected), "{wrong}");
        }
    }
}
