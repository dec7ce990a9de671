//! Links the `stratum` binary with packed relative relocations (DT_RELR) where the C library supports them.
//!
//! The binary is position-independent, and most of its dynamic relocations are relative ones (vtables, static
//! tables of string slices): six megabytes of `.rela.dyn` that the loader reads at every start. Packed, they take
//! a few kilobytes, so every process — an idle agent above all — starts faster and keeps about six megabytes less
//! resident. glibc reads them since 2.36, and the linker then marks the binary as needing `GLIBC_ABI_DT_RELR`, so
//! it refuses to start on an older glibc rather than misbehave. Where this machine's glibc lacks that version (or
//! the target is not Linux with glibc, or is another machine's), the binary is linked as before.

use std::path::Path;

/// Where Linux distributions keep the C library.
const LIBC_PATHS: &[&str] = &[
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/aarch64-linux-gnu/libc.so.6",
    "/usr/lib64/libc.so.6",
    "/lib64/libc.so.6",
    "/usr/lib/libc.so.6",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=STRATUM_NO_RELR");
    let variable = |name: &str| std::env::var(name).unwrap_or_default();
    let native = variable("TARGET") == variable("HOST");
    let linux_gnu = variable("CARGO_CFG_TARGET_OS") == "linux" && variable("CARGO_CFG_TARGET_ENV") == "gnu";
    if native && linux_gnu && std::env::var_os("STRATUM_NO_RELR").is_none() && libc_reads_packed_relocations() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc defines the `GLIBC_ABI_DT_RELR` version (2.36 and later).
fn libc_reads_packed_relocations() -> bool {
    let marker = b"GLIBC_ABI_DT_RELR";
    LIBC_PATHS
        .iter()
        .map(Path::new)
        .filter_map(|path| std::fs::read(path).ok())
        .any(|bytes| bytes.windows(marker.len()).any(|window| window == marker))
}
