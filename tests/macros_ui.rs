//! The proc macros at compile time: declarations that must compile and run (`tests/ui/pass`), and one
//! file per mistake that must not compile (`tests/ui/fail`), each with the exact error the user sees
//! checked in next to it (`.stderr`). After a deliberate change to a message, regenerate them with
//! `TRYBUILD=overwrite cargo test -p kstreams --test macros_ui` and read the diff.

#[test]
fn macros_ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
