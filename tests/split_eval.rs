//! CI gate for the sentence splitter: boundary F1 on the two gold sets (method and filters in
//! `tomtat::testkit::split_eval`), and tomtat must beat both baselines on each. Needs ../shared/data.

use tomtat::testkit::split_eval::{self as eval, Dataset, Scores, Splitter};

fn scores(ds: &Dataset) -> [(Splitter, Scores); 3] {
    Splitter::ALL.map(|sp| (sp, eval::score(&ds.paragraphs, sp)))
}

#[track_caller]
fn gate(ds: &Dataset, min_f1: f64) {
    assert!(
        ds.boundaries() > 500,
        "{}: only {} gold boundaries",
        ds.name,
        ds.boundaries()
    );
    let all = scores(ds);
    for (sp, sc) in &all {
        eprintln!(
            "{:<26} {:<7} P {:.4} R {:.4} F1 {:.4}",
            ds.name,
            sp.name(),
            sc.precision(),
            sc.recall(),
            sc.f1()
        );
    }
    let tomtat = all[0].1.f1();
    assert!(
        tomtat >= min_f1,
        "{}: tomtat F1 {tomtat:.4} < {min_f1}",
        ds.name
    );
    for (sp, sc) in &all[1..] {
        assert!(
            tomtat > sc.f1(),
            "{}: tomtat F1 {tomtat:.4} does not beat {} ({:.4})",
            ds.name,
            sp.name(),
            sc.f1()
        );
    }
}

#[test]
fn underthesea_f1_at_least_099() {
    let path = eval::shared_data_dir().join("sentseg/underthesea-vi-sd.train");
    let ds = eval::load_underthesea(&path).unwrap_or_else(|e| panic!("{e}"));
    gate(&ds, 0.99);
}

#[test]
fn vtb_dev_f1_at_least_098() {
    let path = eval::shared_data_dir().join("sentseg/vi_vtb-ud-dev.conllu");
    let ds = eval::load_conllu(&path, false).unwrap_or_else(|e| panic!("{e}"));
    gate(&ds, 0.98);
}
