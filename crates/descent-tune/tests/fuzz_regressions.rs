//! Every input the fuzzers found to crash, hang or over-allocate (fuzz/regressions/<target>/),
//! replayed through the same readers on the stable toolchain: each must now end in a
//! value or an error, not a panic. The fuzz targets' own code is included, so the replay
//! feeds each input exactly as the fuzzer did.

#[path = "../../../fuzz/src/exercise.rs"]
mod exercise;

#[test]
fn every_input_the_fuzzers_found_is_handled() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut replayed = 0;
    for target in exercise::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| exercise::run(target, &data));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 1, "the regression inputs are in fuzz/regressions/");
    let _ = std::fs::remove_dir_all(exercise::scratch());
}
