//! Every optimizer trains the classic model on digits; prints the README's table.
//!
//!     cargo run --release -p descent --example optimizers
//!
//! Each uses `OptimizerConfig::starting_learning_rate`, batch 32 for 10 epochs (Rprop,
//! a full-batch method: the whole training split per step, 100 steps), seed 42.

use descent::data::{read_csv, CsvOptions, Dataset, LabelColumn, Preprocessing};
use descent::nn::{Activation, Dense, Loss};
use descent::train::Sequential;
use descent::optim::OptimizerConfig;
use descent::train::FitOptions;

fn main() -> descent::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let (x, y) = read_csv(path, &CsvOptions { label_column: Some(LabelColumn::Name("label".into())), ..Default::default() })?;
    let (mut train, mut test) = Dataset::new(x, y.expect("labels"), "digits")?.train_test_split(0.2, 42)?;
    let prep = Preprocessing::fit(None, true, &train.x);
    prep.apply(&mut train.x)?;
    prep.apply(&mut test.x)?;
    println!("| optimizer | learning rate | batch | epochs | held-out accuracy |\n|---|---|---|---|---|");
    for name in OptimizerConfig::NAMES {
        let (acc, lr, batch, epochs) = train_digits(name, &train, &test)?;
        println!("| {name} | {lr} | {batch} | {epochs} | {acc:.3} |");
    }
    Ok(())
}

/// Held-out accuracy of the classic model trained with `name`, and the settings used.
pub fn train_digits(name: &str, train: &Dataset, test: &Dataset) -> descent::Result<(f64, f32, usize, usize)> {
    let lr = OptimizerConfig::starting_learning_rate(name).expect("every optimizer has one");
    let mut cfg = OptimizerConfig::named(name)?;
    cfg.options.learning_rate = Some(lr.into());
    let (batch, epochs) = if name == "rprop" { (train.len(), 100) } else { (32, 10) };
    let mut model = Sequential::new(vec![
        Box::new(Dense::new(64, Activation::Relu).input_shape(&[64])),
        Box::new(Dense::new(10, Activation::Linear)),
    ])?;
    model.compile(cfg.build()?, Loss::sparse_categorical_crossentropy(true), &["accuracy"])?;
    model.fit(&train.x, &train.y, FitOptions { epochs, batch_size: batch, verbose: 0, ..Default::default() })?;
    let acc = model.evaluate(&test.x, &test.y, 64)?.get("accuracy").unwrap_or(0.0);
    Ok((acc, lr, batch, epochs))
}
