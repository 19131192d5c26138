//! The live table of a running study: one row per finished trial, and a status line
//! below it with the trials in flight and the best so far.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::space::{describe, Params};
use crate::study::{Study, StudyOptions};
use crate::trial::{Direction, TrialState};
use descent::Result;

pub(crate) struct LiveTable {
    bar: Option<ProgressBar>,
    state: Mutex<LiveState>,
    direction: Direction,
    metric: String,
}

struct LiveState {
    running: Vec<u64>,
    best: Option<(u64, f64)>,
}

impl LiveTable {
    pub(crate) fn new(study: &Study, opts: &StudyOptions) -> Result<LiveTable> {
        let trials = study.trials()?;
        let best = study.best()?.map(|t| (t.number, t.value.unwrap_or(f64::NAN)));
        let bar = opts.verbose.then(|| {
            let done = trials.iter().filter(|t| t.state.is_finished()).count();
            let bar = ProgressBar::new(opts.n_trials as u64);
            bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} trials · {elapsed} · {msg}").expect("valid template"));
            bar.set_position(done as u64);
            bar
        });
        let table = LiveTable { bar, state: Mutex::new(LiveState { running: Vec::new(), best }), direction: study.direction, metric: study.metric.clone() };
        if opts.verbose {
            let done = trials.iter().filter(|t| t.state.is_finished()).count();
            let queued = trials.iter().filter(|t| t.state == TrialState::Queued).count();
            if done + queued > 0 {
                table.line(format!("resuming: {done} trials finished, {queued} interrupted to retry"));
            }
            table.line(format!("{:>5}  {:<9} {:>10} {:>10} {:>8}  params", "trial", "state", study.metric, "best", "seconds"));
        }
        Ok(table)
    }

    /// A table row: above the status bar on a terminal, plain stdout otherwise.
    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            Some(_) => println!("{text}"),
            None => {}
        }
    }

    fn refresh(&self, st: &LiveState) {
        if let Some(bar) = &self.bar {
            let running: Vec<String> = st.running.iter().map(|n| format!("#{n}")).collect();
            let best = st.best.map_or("—".into(), |(n, v)| format!("#{n} {} {v:.4}", self.metric));
            bar.set_message(format!("running {} · best {best}", running.join(" ")));
        }
    }

    pub(crate) fn started(&self, number: u64) {
        let mut st = self.state.lock().unwrap();
        st.running.push(number);
        self.refresh(&st);
    }

    pub(crate) fn finished(&self, number: u64, state: TrialState, value: Option<f64>, params: &Params, seconds: f64, message: Option<&str>) {
        let mut st = self.state.lock().unwrap();
        st.running.retain(|n| *n != number);
        if let (TrialState::Complete, Some(v)) = (state, value) {
            if st.best.is_none_or(|(_, b)| self.direction.better(v, b)) {
                st.best = Some((number, v));
            }
        }
        if let Some(bar) = &self.bar {
            let fmt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.4}"));
            let mut row = format!(
                "{number:>5}  {:<9} {:>10} {:>10} {seconds:>8.1}  {}",
                state.as_str(),
                fmt(value),
                fmt(st.best.map(|b| b.1)),
                describe(params)
            );
            if let Some(m) = message {
                row += &format!("  ({m})");
            }
            self.line(row);
            bar.inc(1);
        }
        self.refresh(&st);
    }

    pub(crate) fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
