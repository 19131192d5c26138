//! Keras-style progress output as a callback: a live bar per epoch (loss, metrics, ETA)
//! on a terminal, one summary line per epoch otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::callbacks::{Callback, Logs, TrainContext};

/// Redraw at most this often: formatting the message allocates, so not every batch.
const REFRESH: Duration = Duration::from_millis(100);

pub struct ProgressCallback {
    verbose: u8,
    live: bool,
    bar: Option<ProgressBar>,
    last_draw: Instant,
    epoch_start: Instant,
    epochs: usize,
}

impl ProgressCallback {
    /// `verbose`: 0 silent, 1 live bar (falls back to lines off a terminal), 2 one line per epoch.
    pub fn new(verbose: u8) -> Self {
        let live = verbose == 1 && std::io::stdout().is_terminal();
        ProgressCallback { verbose, live, bar: None, last_draw: Instant::now(), epoch_start: Instant::now(), epochs: 0 }
    }
}

impl Callback for ProgressCallback {
    fn on_train_begin(&mut self, ctx: &mut TrainContext) {
        self.epochs = ctx.epochs;
    }

    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut TrainContext) {
        self.epoch_start = Instant::now();
        if self.verbose == 0 {
            return;
        }
        println!("Epoch {}/{}", epoch + 1, self.epochs);
        if self.live {
            let bar = ProgressBar::with_draw_target(Some(ctx.steps_per_epoch as u64), ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{pos:>5}/{len} [{bar:30}] ETA {eta} - {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            self.bar = Some(bar);
        }
    }

    fn on_batch_end(&mut self, batch: usize, logs: &Logs, _ctx: &mut TrainContext) {
        if let Some(bar) = &self.bar {
            if self.last_draw.elapsed() >= REFRESH {
                bar.set_position(batch as u64 + 1);
                bar.set_message(logs.format());
                self.last_draw = Instant::now();
            }
        }
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &Logs, ctx: &mut TrainContext) {
        if self.verbose == 0 {
            return;
        }
        let secs = self.epoch_start.elapsed().as_secs_f64();
        let per_step = secs / ctx.steps_per_epoch.max(1) as f64;
        let line = format!(
            "{}/{} - {:.2}s {:.0}us/step - {}",
            ctx.steps_per_epoch,
            ctx.steps_per_epoch,
            secs,
            per_step * 1e6,
            logs.format()
        );
        if let Some(bar) = self.bar.take() { bar.finish_and_clear() }
        println!("{line}");
    }
}
