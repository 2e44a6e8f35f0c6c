//! Sentence-splitter evaluation report.
//!
//!     cargo run --release --example split_eval [-- --errors N] [-- --vietnews N]
//!
//! Prints boundary precision / recall / F1 of tomtat, UAX#29 and a naive splitter on the
//! underthesea sentence file and UD Vietnamese-VTB (dev; train is the development set), on
//! IWSLT'15 tst2012 (vi and en, one segment per line; a held-out sanity check), then
//! compares tomtat with vietnews' own automatic split. `--errors N` lists up to N of tomtat's
//! mistakes per data set, `--vietnews N` up to N vietnews disagreements of each kind.
//! Data comes from ../shared/data (see `tomtat::testkit::split_eval` for the method and filters).

use std::process::ExitCode;

use tomtat::testkit::split_eval::{self as eval, Dataset, Disagreement, Splitter};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("split_eval: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    Some(args.get(at + 1).and_then(|v| v.parse().ok()).unwrap_or(20))
}

fn run() -> Result<(), eval::EvalError> {
    let data = eval::shared_data_dir();
    let sentseg = data.join("sentseg");
    let sets = [
        (
            "(a)",
            eval::load_underthesea(&sentseg.join("underthesea-vi-sd.train"))?,
        ),
        (
            "(b)",
            eval::load_conllu(&sentseg.join("vi_vtb-ud-dev.conllu"), false)?,
        ),
        (
            "(b')",
            eval::load_conllu(&sentseg.join("vi_vtb-ud-dev.conllu"), true)?,
        ),
        (
            "dev",
            eval::load_conllu(&sentseg.join("vi_vtb-ud-train.conllu"), false)?,
        ),
        // Never looked at while writing the rules: a held-out sanity check, English included.
        (
            "iw-vi",
            eval::load_lines(&data.join("iwslt15/tst2012.vi"), "iwslt15 tst2012.vi")?,
        ),
        (
            "iw-en",
            eval::load_lines(&data.join("iwslt15/tst2012.en"), "iwslt15 tst2012.en")?,
        ),
    ];
    println!("Sentence-internal boundary precision / recall / F1\n");
    println!(
        "{:<5} {:<28} {:>6} {:>6}  {:<8} {:>7} {:>7} {:>7} {:>6} {:>6}",
        "set", "data", "sents", "bounds", "splitter", "P", "R", "F1", "FP", "FN"
    );
    for (tag, ds) in &sets {
        for sp in Splitter::ALL {
            let sc = eval::score(&ds.paragraphs, sp);
            println!(
                "{:<5} {:<28} {:>6} {:>6}  {:<8} {:>7.4} {:>7.4} {:>7.4} {:>6} {:>6}",
                tag,
                ds.name,
                ds.sentences,
                ds.boundaries(),
                sp.name(),
                sc.precision(),
                sc.recall(),
                sc.f1(),
                sc.predicted - sc.true_pos,
                sc.gold - sc.true_pos
            );
        }
    }
    println!();
    for (tag, ds) in &sets {
        print_filters(tag, ds);
    }
    if let Some(n) = flag("--errors") {
        for (tag, ds) in &sets {
            println!(
                "\n{tag} tomtat mistakes on {} (‖ marks the boundary):",
                ds.name
            );
            print_disagreements(
                &eval::disagreements(&ds.paragraphs, Splitter::Tomtat),
                n,
                "FP",
                "FN",
            );
        }
    }

    let news = eval::load_vietnews(&data.join("vietnews/val300.jsonl"))?;
    let sc = eval::score(&news, Splitter::Tomtat);
    println!(
        "\nvietnews val300: {} articles, {} boundaries in body_sentences (an automatic split), \
         tomtat {} boundaries; agreement P {:.4} R {:.4} F1 {:.4}",
        news.len(),
        sc.gold,
        sc.predicted,
        sc.precision(),
        sc.recall(),
        sc.f1()
    );
    for sp in [Splitter::Uax29, Splitter::Naive] {
        let s = eval::score(&news, sp);
        println!(
            "  {} vs body_sentences: P {:.4} R {:.4} F1 {:.4}",
            sp.name(),
            s.precision(),
            s.recall(),
            s.f1()
        );
    }
    if let Some(n) = flag("--vietnews") {
        println!("tomtat vs vietnews body_sentences:");
        print_disagreements(
            &eval::disagreements(&news, Splitter::Tomtat),
            n,
            "tomtat splits, vietnews does not",
            "vietnews splits, tomtat does not",
        );
    }
    Ok(())
}

fn print_filters(tag: &str, ds: &Dataset) {
    println!(
        "{tag} {}: {} sentences in {} paragraphs; dropped {} unterminated, {} two-sentence lines",
        ds.name,
        ds.sentences,
        ds.paragraphs.len(),
        ds.dropped_unterminated,
        ds.dropped_two_sentences
    );
}

fn print_disagreements(all: &[Disagreement], n: usize, extra: &str, missing: &str) {
    for (label, want_extra) in [(extra, true), (missing, false)] {
        let items: Vec<_> = all.iter().filter(|d| d.extra == want_extra).collect();
        println!("  {label}: {}", items.len());
        for d in items.iter().take(n) {
            println!("    {}", d.context.replace('\n', " "));
        }
    }
}
