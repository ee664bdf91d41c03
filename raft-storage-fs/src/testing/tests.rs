//! Unit tests of the simulated file system.

use super::*;

#[test]
fn a_truncation_a_power_loss_cut_short_is_kept_or_lost_whole() {
    let path = Path::new("/f");
    for seed in 0..64 {
        let fs = SimFs::new();
        let file = fs.open(path, true).unwrap();
        file.write_all_at(&[0xAB; 4096], 0).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        file.set_len(100).unwrap();
        file.set_len(4096).unwrap();
        fs.power_loss(seed);
        let data = fs.contents(path).unwrap();
        let mut cut = vec![0xAB; 100];
        cut.resize(4096, 0);
        assert!(data == [0xAB; 4096] || data == cut, "seed {seed}");
    }
}

#[test]
fn a_crash_scheduled_after_n_calls_kills_the_process_at_the_next_one() {
    let fs = SimFs::new();
    let process = fs.process();
    let dir = Path::new("/d");
    process.create_dir_all(dir).unwrap();
    fs.crash_after(2, Crash::Processes);
    process.list(dir).unwrap();
    process.list(dir).unwrap();
    assert!(
        process.list(dir).is_err(),
        "the third call found a dead process"
    );
    assert!(fs.cancel_crash(), "the crash happened");
    assert!(fs.process().list(dir).is_ok(), "a new process works");
}
