//! The proc macros at compile time: declarations that must compile and run (`tests/ui/pass`), and one
//! file per mistake that must not compile (`tests/ui/fail`), each with the exact error the user sees
//! checked in next to it (`.stderr`). After a deliberate change to a message, regenerate them with
//! `TRYBUILD=overwrite cargo test -p kstreams --test macros_ui` and read the diff.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// Set in the environment of the child this test runs the cases in.
const CHILD: &str = "KSTREAMS_MACROS_UI_CHILD";

#[test]
fn macros_ui() {
    let native = native_libraries();
    if std::env::var_os(CHILD).is_some() || native.is_empty() {
        let cases = trybuild::TestCases::new();
        cases.pass("tests/ui/pass/*.rs");
        cases.compile_fail("tests/ui/fail/*.rs");
        return;
    }
    // The environment trybuild's cargo inherits is this process's; setting it here would be `unsafe`
    // (other threads may read it), so the cases run in a child started with it.
    let exe = std::env::current_exe().expect("the test's own executable");
    let status = Command::new(exe)
        .args(["macros_ui", "--exact", "--nocapture"])
        .env(CHILD, "1")
        .envs(native)
        .status()
        .expect("start the test's own executable");
    assert!(status.success(), "the macros' compile-time cases failed (above)");
}

/// trybuild builds the cases in a target directory of its own (`<target>/tests/trybuild`), where the
/// build scripts of librocksdb-sys and rdkafka-sys would build RocksDB's C++ and librdkafka again: 13
/// minutes on a cold 2-core machine. Both scripts can link a library built elsewhere instead, so they are
/// pointed at the ones this test's own build made (`<target>/<profile>/build/*/out`), through the
/// environment trybuild's cargo inherits (returned here). Where none fits (another feature set), they
/// build as before.
fn native_libraries() -> Vec<(&'static str, OsString)> {
    let mut env = Vec::new();
    let Some(build) = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.join("build"))) else {
        return env;
    };
    if let Some(rocksdb) = newest(&build, "librocksdb-sys-", |out| out.join("librocksdb.a").is_file()) {
        // librocksdb-sys links a prebuilt library when told where it is (its `ROCKSDB_LIB_DIR`).
        env.push(("ROCKSDB_LIB_DIR", rocksdb.into()));
        env.push(("ROCKSDB_STATIC", "1".into()));
    }
    let fits = |out: &Path| {
        let Ok(config) = std::fs::read_to_string(out.join("config.h")) else { return false };
        let with = |feature: &str| config.contains(&format!("#define {feature} 1"));
        out.join("src/librdkafka.a").is_file()
            && with("WITH_SSL") == cfg!(feature = "ssl")
            && with("WITH_ZSTD") == cfg!(feature = "zstd")
            && with("WITH_SASL_CYRUS") == cfg!(feature = "gssapi")
    };
    if let Some(rdkafka) = newest(&build, "rdkafka-sys-", fits) {
        // rdkafka-sys's build script links `$DEP_LIBRDKAFKA_STATIC_ROOT/src/librdkafka.a` when it sees
        // the (undeclared) feature variable `CARGO_FEATURE_STATIC_EXTERNAL`.
        env.push(("CARGO_FEATURE_STATIC_EXTERNAL", "1".into()));
        env.push(("DEP_LIBRDKAFKA_STATIC_ROOT", rdkafka.into()));
    }
    env
}

/// The most recently built `<build>/<prefix>*/out` that `fits`.
fn newest(build: &Path, prefix: &str, fits: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    std::fs::read_dir(build)
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .map(|entry| entry.path().join("out"))
        .filter(|out| fits(out))
        .max_by_key(|out| out.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH))
}
