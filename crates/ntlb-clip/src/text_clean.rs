//! The text clean-up CLIP's `SimpleTokenizer` does before BPE:
//! `whitespace_clean(basic_clean(text)).lower()` where `basic_clean` is `ftfy.fix_text` followed
//! by `html.unescape` twice. `tokenizer.json` only knows NFC + whitespace + lowercase, so the
//! ftfy repairs that matter for prompts are done here: mojibake (UTF-8 read as Windows-1252 or
//! Latin-1), curly quotes, Latin ligatures, full-width/half-width forms, then NFC.

use unicode_normalization::UnicodeNormalization;

/// Windows-1252 bytes 0x80..0x9F and the characters they decode to.
const CP1252_HIGH: [(u8, char); 27] = [
    (0x80, '€'),
    (0x82, '‚'),
    (0x83, 'ƒ'),
    (0x84, '„'),
    (0x85, '…'),
    (0x86, '†'),
    (0x87, '‡'),
    (0x88, 'ˆ'),
    (0x89, '‰'),
    (0x8A, 'Š'),
    (0x8B, '‹'),
    (0x8C, 'Œ'),
    (0x8E, 'Ž'),
    (0x91, '‘'),
    (0x92, '’'),
    (0x93, '“'),
    (0x94, '”'),
    (0x95, '•'),
    (0x96, '–'),
    (0x97, '—'),
    (0x98, '˜'),
    (0x99, '™'),
    (0x9A, 'š'),
    (0x9B, '›'),
    (0x9C, 'œ'),
    (0x9E, 'ž'),
    (0x9F, 'Ÿ'),
];

/// The byte a character came from if the text was decoded as Windows-1252 (Latin-1 fallback
/// for the five bytes Windows-1252 leaves undefined).
fn cp1252_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 0x80 || (0xA0..=0xFF).contains(&u) || matches!(u, 0x81 | 0x8D | 0x8F | 0x90 | 0x9D) {
        return Some(u as u8);
    }
    CP1252_HIGH.iter().find(|(_, ch)| *ch == c).map(|(b, _)| *b)
}

/// Undo UTF-8 text that was decoded as Windows-1252: a lead byte (0xC2..0xF4) followed by the
/// right number of continuation bytes, all as single characters, is one mojibake sequence.
fn fix_mojibake(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(lead) = cp1252_byte(chars[i]) {
            let need = match lead {
                0xC2..=0xDF => 1,
                0xE0..=0xEF => 2,
                0xF0..=0xF4 => 3,
                _ => 0,
            };
            if need > 0 && i + need < chars.len() {
                let mut bytes = vec![lead];
                for c in &chars[i + 1..=i + need] {
                    match cp1252_byte(*c) {
                        Some(b) if (0x80..=0xBF).contains(&b) => bytes.push(b),
                        _ => break,
                    }
                }
                if bytes.len() == need + 1 {
                    if let Ok(fixed) = std::str::from_utf8(&bytes) {
                        out.push_str(fixed);
                        i += need + 1;
                        continue;
                    }
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// The subset of `ftfy.fix_text` (ftfy 6 defaults) that changes CLIP prompts.
pub fn ftfy_fix(s: &str) -> String {
    let s = fix_mojibake(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{2018}'..='\u{201b}' | '\u{02bc}' => out.push('\''),
            '\u{201c}'..='\u{201f}' => out.push('"'),
            '\u{3000}' => out.push(' '),
            // Full-width ASCII and half-width forms: their compatibility decomposition.
            '\u{ff01}'..='\u{ffef}' => out.extend(std::iter::once(c).nfkc()),
            _ => match ligature(c) {
                Some(l) => out.push_str(l),
                None => out.push(c),
            },
        }
    }
    out.nfc().collect()
}

/// Python's `str.isspace` (which `\s` in a `str` regex follows): Unicode White_Space plus the
/// four information separators U+001C..U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `re.sub(r"\s+", " ", text).strip()`.
pub fn whitespace_clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending = false;
    for c in s.chars() {
        if py_space(c) {
            pending = !out.is_empty();
        } else {
            if pending {
                out.push(' ');
                pending = false;
            }
            out.push(c);
        }
    }
    out
}

/// `html.unescape`, applied twice as `basic_clean` does.
fn html_unescape_twice(s: &str) -> String {
    let once = html_escape::decode_html_entities(s).to_string();
    html_escape::decode_html_entities(&once).to_string()
}

/// The text CLIP's tokenizer splits: `whitespace_clean(basic_clean(text)).lower()`.
/// `str::to_lowercase` applies the word-final sigma rule as Python's `lower` does.
pub fn clean_text(s: &str) -> String {
    let basic = html_unescape_twice(&ftfy_fix(s));
    whitespace_clean(basic.trim_matches(py_space)).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_that_tokenizer_json_does_not_know() {
        assert_eq!(clean_text("mojibake: cafÃ©"), "mojibake: café");
        assert_eq!(clean_text("“curly quotes” and ‘single’ ones"), "\"curly quotes\" and 'single' ones");
        assert_eq!(clean_text("ﬁne ﬂour ligatures"), "fine flour ligatures");
        assert_eq!(clean_text("ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ"), "fullwidth text");
        assert_eq!(clean_text("&amp;amp; double-escaped &#39;quote&#39;"), "& double-escaped 'quote'");
        assert_eq!(clean_text("ΟΔΥΣΣΕΥΣ (final sigma)"), "οδυσσευς (final sigma)");
        assert_eq!(clean_text("non\u{a0}breaking  space\t"), "non breaking space");
        // Plain accented text is not mojibake and stays as it is.
        assert_eq!(clean_text("café crème brûlée"), "café crème brûlée");
    }
}
