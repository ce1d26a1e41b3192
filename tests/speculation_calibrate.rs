//! `specbatch calibrate` fits the drafter's per-position temperatures on a
//! job's first rows and writes a calibration file the job then accepts; a
//! job with no drafter is refused with exit code 2.

mod common;

use common::{assert_exit_2, specbatch};
use specbatch::spec::Sts;

#[test]
fn calibrate_writes_a_file_the_job_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let base = common::write_quickstart_spec(dir.path(), &out, 32);
    let text = std::fs::read_to_string(&base).unwrap();
    let spec = dir.path().join("ngram.yaml");
    std::fs::write(
        &spec,
        text.clone() + "speculation:\n  method: ngram\n  max_draft: 4\n",
    )
    .unwrap();
    let sts = dir.path().join("sts.json");

    let run = specbatch(&[
        "calibrate",
        spec.to_str().unwrap(),
        "--out",
        sts.to_str().unwrap(),
        "--rows",
        "6",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let fitted = Sts::load(&sts).unwrap();
    assert_eq!(fitted.temperatures().len(), 4);
    assert!(
        run.stdout.contains("verify rounds from 6 rows"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("survival ECE raw -> calibrated"),
        "{}",
        run.stdout
    );
    assert!(
        !out.exists(),
        "calibration writes nothing to the job's output"
    );

    let calibrated = dir.path().join("calibrated.yaml");
    std::fs::write(
        &calibrated,
        text.clone()
            + &format!(
                "speculation:\n  method: ngram\n  max_draft: 4\n  calibration: {}\n",
                sts.display()
            ),
    )
    .unwrap();
    let run = specbatch(&["validate", calibrated.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("(4 position(s))"), "{}", run.stdout);

    let run = specbatch(&[
        "calibrate",
        base.to_str().unwrap(),
        "--out",
        sts.to_str().unwrap(),
    ]);
    assert_exit_2(
        &run,
        &["speculation.method is `none`", "no drafter to calibrate"],
    );
}
