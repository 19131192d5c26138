//! Checks on data given to fit / evaluate / predict, with errors that say what and where.

use crate::error::{Error, Result};
use crate::nn::{Loss, ModelKind, Network};
use crate::tensor::Tensor;

/// Number of features per sample the data has, checked against a built single-input
/// model.
pub fn check_inputs(model: &Network, x: &Tensor, source: &str) -> Result<()> {
    if model.num_inputs() != 1 {
        return Err(Error::Config(format!(
            "{source}: one input tensor for model '{}', which has {} inputs ({}): give one tensor per input",
            model.name(),
            model.num_inputs(),
            model.input_names().collect::<Vec<_>>().join(", ")
        )));
    }
    check_input(model, 0, x, source)
}

/// The data for input `index` of a built model: finite, with that input's features.
pub fn check_input(model: &Network, index: usize, x: &Tensor, source: &str) -> Result<()> {
    if x.shape().rank() < 2 {
        return Err(Error::shape(source.to_string(), "inputs of shape [samples, features…]", x.shape()));
    }
    x.check_finite(source)?;
    if let Some(input) = model.input_shapes().nth(index) {
        let want: usize = input.iter().product();
        if x.row_len() != want {
            let what = match model.kind() {
                ModelKind::Sequential => format!("layer '{}' (the model's input)", model.layers().first().map_or("?", |l| l.name())),
                ModelKind::Functional => format!("input '{}' of the model", model.input_names().nth(index).unwrap_or("?")),
            };
            return Err(Error::shape(
                format!("{what} fed from {source}"),
                format!("{want} features per sample (input_shape {input:?})"),
                format!("{} features (data shape {})", x.row_len(), x.shape()),
            ));
        }
    }
    Ok(())
}

/// Targets must match the inputs' sample count and the loss's expected form.
pub fn check_targets(loss: &Loss, output_shape: &[usize], x: &Tensor, y: &Tensor, source: &str) -> Result<()> {
    check_targets_at(loss, output_shape, x, y, source, &|i| format!("row {i}"))
}

/// [`check_targets`] of a data set, naming a bad sample as its file has it.
pub fn check_dataset_targets(loss: &Loss, output_shape: &[usize], d: &crate::data::Dataset) -> Result<()> {
    check_targets_at(loss, output_shape, &d.x, &d.y, &d.name, &|i| d.position(i))
}

/// [`check_targets`], with `at(sample)` naming a sample in errors.
fn check_targets_at(loss: &Loss, output_shape: &[usize], x: &Tensor, y: &Tensor, source: &str, at: &dyn Fn(usize) -> String) -> Result<()> {
    let outputs: usize = output_shape.iter().product();
    if y.rows() != x.rows() {
        return Err(Error::shape(format!("targets {source}"), format!("{} samples (as the inputs)", x.rows()), y.rows()));
    }
    y.check_finite(source)?;
    if loss.sparse_targets() {
        // One class per position: a sequence output [T, classes] takes T labels a sample.
        let classes = output_shape.last().copied().unwrap_or(1);
        let positions = outputs / classes.max(1);
        if y.row_len() != positions {
            return Err(Error::shape(
                format!("targets {source} for {}", loss.name()),
                if positions == 1 { "one integer class label per sample".to_string() } else { format!("{positions} integer class labels per sample (one per position)") },
                y.shape(),
            ));
        }
        let targets = y.targets();
        for i in 0..targets.len() {
            let label = targets.value(i);
            if label.fract() != 0.0 || label < 0.0 || label as usize >= classes {
                let at = if positions == 1 { at(i) } else { format!("{}, position {}", at(i / positions), i % positions) };
                return Err(Error::data(
                    source,
                    format!(
                        "label {label} at {at} is outside [0, {classes}): the model's last layer has \
                         {classes} outputs (class labels must be integers 0..{})",
                        classes.saturating_sub(1)
                    ),
                ));
            }
        }
    } else if y.row_len() != outputs {
        return Err(Error::shape(
            format!("targets {source} for {}", loss.name()),
            format!("{outputs} values per sample (the model's outputs)"),
            format!("{} (shape {})", y.row_len(), y.shape()),
        ));
    } else if matches!(loss, Loss::BinaryCrossentropy { .. }) {
        // Outside [0, 1] the loss has no minimum (it falls without bound): reject.
        let targets = y.targets();
        if let Some((i, t)) = (0..targets.len()).map(|i| (i, targets.value(i))).find(|(_, t)| !(0.0..=1.0).contains(t)) {
            return Err(Error::data(
                source,
                format!("target {t} at {}, column {} is outside [0, 1] ({} takes probabilities)", at(i / outputs.max(1)), i % outputs.max(1), loss.name()),
            ));
        }
    }
    Ok(())
}
