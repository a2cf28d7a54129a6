//! Gives the shared library the SONAME `libxq.so`, so that consumers record that name (not
//! the build path) as their dependency.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libxq.so");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
