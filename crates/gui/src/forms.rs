//! `application/x-www-form-urlencoded` bodies (the login and logout forms), parsed strictly.

use std::collections::BTreeMap;

/// Most fields a form may have.
pub const MAX_FIELDS: usize = 64;

fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let h = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("malformed form data: bad % escape")?;
                out.push(h);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "malformed form data: not UTF-8".to_string())
}

/// Parses a form body. A repeated field, a bad escape or invalid UTF-8 is an error.
pub fn parse(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "malformed form data: not UTF-8")?;
    let mut out = BTreeMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k)?;
        let v = decode(v)?;
        if out.len() >= MAX_FIELDS {
            return Err("malformed form data: too many fields".into());
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(format!("malformed form data: field {k} given twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let f = parse(b"password=a+b%26c%3D&csrf=12ab&empty=&flag").unwrap();
        assert_eq!(f["password"], "a b&c=");
        assert_eq!(f["csrf"], "12ab");
        assert_eq!(f["empty"], "");
        assert_eq!(f["flag"], "");
        assert_eq!(parse(b"").unwrap().len(), 0);
        assert_eq!(parse(b"x=%C3%A9").unwrap()["x"], "\u{e9}");
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse(b"a=%zz").is_err());
        assert!(parse(b"a=%4").is_err());
        assert!(parse(b"a=%ff").is_err());
        assert!(parse(b"a=1&a=2").is_err());
        assert!(parse(&[b'a', b'=', 0xff]).is_err());
        let many: Vec<String> = (0..100).map(|i| format!("f{i}=1")).collect();
        assert!(parse(many.join("&").as_bytes()).is_err());
    }
}
