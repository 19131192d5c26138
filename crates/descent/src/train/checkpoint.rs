//! Full training checkpoints of a model: what `io::write_checkpoint` stores, taken
//! from the network, its optimizer and the history, and put back on resume.

use std::path::Path;

use super::History;
use crate::error::{Error, Result};
use crate::io::{read_checkpoint, write_checkpoint, Checkpoint};
use crate::nn::Network;
use crate::optim::Optimizer;

/// What a checkpoint restores besides the model and optimizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Restored {
    /// Epochs completed when it was written (training resumes at this epoch index).
    pub epoch: usize,
    pub history: History,
}

/// Writes a full checkpoint after `epoch` completed epochs (atomically).
pub(crate) fn write(path: &Path, net: &Network, optimizer: &dyn Optimizer, epoch: usize, history: &History) -> Result<()> {
    let checkpoint = Checkpoint {
        epoch,
        history_epochs: history.epochs.clone(),
        history: history.metrics.clone(),
        optimizer: optimizer.save_state(),
        rngs: net.layers().iter().filter_map(|l| l.rng_state().map(|r| (l.name().to_string(), r))).collect(),
    };
    write_checkpoint(path, net.params(), &checkpoint)
}

/// Puts a checkpoint of this network (and an optimizer of the same kind) back: weights,
/// optimizer state, random streams. Everything is read and checked before anything changes.
pub(crate) fn restore(path: &Path, net: &mut Network, optimizer: &mut dyn Optimizer) -> Result<Restored> {
    let (checkpoint, weights) = read_checkpoint(path, net.params())?;
    let saved = &checkpoint.optimizer.optimizer;
    if optimizer.name() != saved && optimizer.save_state().optimizer != *saved {
        return Err(Error::format(path, format!("written with optimizer `{saved}`, but the model is compiled with `{}`", optimizer.name())));
    }
    optimizer.load_state(&checkpoint.optimizer, net.params()).map_err(|e| Error::format(path, e.to_string()))?;
    let store = net.params_mut();
    let ids: Vec<_> = store.ids().collect();
    for (id, w) in ids.into_iter().zip(weights) {
        store.value_mut(id).copy_from_slice(&w);
    }
    for (layer, rng) in checkpoint.rngs {
        if let Some(l) = net.layers().iter().find(|l| l.name() == layer) {
            l.set_rng_state(rng);
        }
    }
    Ok(Restored { epoch: checkpoint.epoch, history: History { epochs: checkpoint.history_epochs, metrics: checkpoint.history } })
}
