//! Word expansion with every lexer option: first byte selects options, the rest is
//! `NAME=value` lines (the environment) then a NUL and the word.
#![no_main]

use cairn::frontend::expand::Lexer;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Some((&opts, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let (env_text, word) = text.split_once('\0').unwrap_or(("", &text));
    let env: BTreeMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let lexer = Lexer {
        escape: if opts & 1 == 0 { '\\' } else { '`' },
        raw_quotes: opts & 2 != 0,
        raw_escapes: opts & 4 != 0,
        skip_unset: opts & 8 != 0,
        skip_process_quotes: opts & 16 != 0,
    };
    let one = lexer.process_word(word, &env);
    let many = lexer.process_words(word, &env);
    // Both entry points run the same lexer: they must agree on success or failure.
    assert_eq!(one.is_ok(), many.is_ok(), "word {word:?}");
});
