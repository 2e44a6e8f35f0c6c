//! Run statistics and the end-of-run report on stderr.

use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct StageStats {
    pub tokens_in: usize,
    pub tokens_out: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct Stats {
    pub started: Instant,
    pub articles: usize,
    pub failed: usize,
    pub skipped: usize,
    pub sentences: usize,
    /// In order of first use.
    pub stages: Vec<(String, StageStats)>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            articles: 0,
            failed: 0,
            skipped: 0,
            sentences: 0,
            stages: Vec::new(),
        }
    }
}

impl Stats {
    pub fn add_stage(&mut self, name: &str, tokens_in: usize, tokens_out: usize, seconds: f64) {
        let i = match self.stages.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.stages.push((name.to_string(), StageStats::default()));
                self.stages.len() - 1
            }
        };
        let s = &mut self.stages[i].1;
        s.tokens_in += tokens_in;
        s.tokens_out += tokens_out;
        s.seconds += seconds;
    }

    /// Add `other`'s stages under `prefix` + name (e.g. the other order of `--order compare`).
    pub fn merge_prefixed(&mut self, other: &Stats, prefix: &str) {
        for (n, st) in &other.stages {
            self.add_stage(
                &format!("{prefix}{n}"),
                st.tokens_in,
                st.tokens_out,
                st.seconds,
            );
        }
    }

    /// With `--order compare`: (order, model seconds, tokens in + out) of each order.
    pub fn order_costs(&self) -> Option<Vec<(&'static str, f64, usize)>> {
        const SF: &str = "summarize-first: ";
        if !self.stages.iter().any(|(n, _)| n.starts_with(SF)) {
            return None;
        }
        let sum = |alt: bool| {
            self.stages
                .iter()
                .filter(|(n, _)| n.starts_with(SF) == alt)
                .fold((0.0, 0), |(s, t), (_, st)| {
                    (s + st.seconds, t + st.tokens_in + st.tokens_out)
                })
        };
        let (a, b) = (sum(false), sum(true));
        Some(vec![
            ("translate-first", a.0, a.1),
            ("summarize-first", b.0, b.1),
        ])
    }

    pub fn to_json(&self) -> serde_json::Value {
        let wall = self.started.elapsed().as_secs_f64();
        let stages: serde_json::Map<String, serde_json::Value> = self
            .stages
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    serde_json::json!({
                        "tokens_in": s.tokens_in,
                        "tokens_out": s.tokens_out,
                        "seconds": (s.seconds * 1000.0).round() / 1000.0,
                        "tokens_out_per_s": if s.seconds > 0.0 { (s.tokens_out as f64 / s.seconds).round() } else { 0.0 },
                    }),
                )
            })
            .collect();
        let orders: Option<serde_json::Map<String, serde_json::Value>> =
            self.order_costs().map(|v| {
                v.into_iter()
                    .map(|(o, secs, toks)| {
                        (
                            o.to_string(),
                            serde_json::json!({"seconds": (secs * 1000.0).round() / 1000.0, "model_tokens": toks}),
                        )
                    })
                    .collect()
            });
        serde_json::json!({
            "orders": orders,
            "articles": self.articles,
            "failed": self.failed,
            "skipped": self.skipped,
            "sentences": self.sentences,
            "stages": stages,
            "wall_s": (wall * 1000.0).round() / 1000.0,
            "articles_per_min": if wall > 0.0 { (self.articles as f64 * 60.0 / wall * 10.0).round() / 10.0 } else { 0.0 },
            "peak_rss_mb": peak_rss_mb(),
        })
    }

    /// Human-readable report lines.
    pub fn render(&self) -> String {
        let wall = self.started.elapsed().as_secs_f64();
        let mut s = format!(
            "run: {} articles ({} failed, {} skipped), {} sentences, {:.1} s wall, {:.1} articles/min, peak RSS {} MB\n",
            self.articles,
            self.failed,
            self.skipped,
            self.sentences,
            wall,
            if wall > 0.0 { self.articles as f64 * 60.0 / wall } else { 0.0 },
            peak_rss_mb().map_or("?".to_string(), |m| format!("{m:.0}"))
        );
        if let Some(costs) = self.order_costs() {
            let parts: Vec<String> = costs
                .iter()
                .map(|(o, secs, toks)| format!("{o} {secs:.2} s of model time, {toks} tokens"))
                .collect();
            s.push_str(&format!("  orders: {}\n", parts.join("; ")));
        }
        for (n, st) in &self.stages {
            s.push_str(&format!(
                "  {n}: {} tokens in, {} tokens out in {:.2} s ({:.0} tokens out/s)\n",
                st.tokens_in,
                st.tokens_out,
                st.seconds,
                if st.seconds > 0.0 {
                    st.tokens_out as f64 / st.seconds
                } else {
                    0.0
                }
            ));
        }
        s
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}
