//! Fuzzes the whole front end: any bytes must check without panicking, every diagnostic must render, and a file
//! that formats must format to itself again.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checked = stratum_lang::check("fuzz.stratum", data, &stratum_lang::NoImports);
    for diagnostic in &checked.diagnostics {
        let _ = stratum_lang::render(diagnostic, &checked.sources, false);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(formatted) = stratum_lang::format::format(text)
    {
        assert_eq!(stratum_lang::format::format(&formatted).ok(), Some(formatted));
    }
});
