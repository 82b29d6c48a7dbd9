//! Any bytes: the parser must not panic or hang; whatever parses must validate without panicking,
//! and whatever it can write back must re-parse to the same config (and write identically).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_config::{diff, parse, to_string, validate, StaticResolver};

fuzz_target!(|data: &[u8]| {
    let resolver = StaticResolver::standard();
    let Ok(parsed) = parse(data, &resolver) else {
        return;
    };
    let _ = validate(&parsed.config, Some(&parsed.source));
    assert!(diff(&parsed.config, &parsed.config).is_empty());
    if let Ok(text) = to_string(&parsed.config) {
        let again = parse(text.as_bytes(), &resolver)
            .unwrap_or_else(|e| panic!("written config does not parse: {e}\n{text}"));
        assert_eq!(again.config, parsed.config, "round trip changed the config:\n{text}");
        assert_eq!(to_string(&again.config).ok().as_deref(), Some(text.as_str()));
    }
});
