//! The classic Keras program, in Rust:
//!
//!     model = Sequential([Dense(64, relu, input_shape=(64,)), Dense(10)])
//!     model.compile(Adam(0.001), SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
//!     model.fit(x_train, y_train, epochs=10)
//!
//! on the bundled UCI handwritten digits (1797 8×8 images). Run from the repository root:
//!
//!     cargo run --release -p descent --example classic

use descent::data::{read_csv, CsvOptions, Dataset, LabelColumn, Preprocessing};
use descent::nn::{Activation, Dense, Loss};
use descent::train::Sequential;
use descent::optim::Adam;
use descent::train::FitOptions;

fn main() -> descent::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let options = CsvOptions { label_column: Some(LabelColumn::Name("label".into())), ..Default::default() };
    let (x, y) = read_csv(path, &options)?;
    let data = Dataset::new(x, y.expect("label column"), "digits.csv")?;
    let (mut train, mut test) = data.train_test_split(0.2, 42)?;
    // Standardize each pixel with the training split's mean and std (never the test's).
    let prep = Preprocessing::fit(None, true, &train.x);
    prep.apply(&mut train.x)?;
    prep.apply(&mut test.x)?;

    let mut model = Sequential::new(vec![
        Box::new(Dense::new(64, Activation::Relu).input_shape(&[64])),
        Box::new(Dense::new(10, Activation::Linear)),
    ])?;
    model.compile(Adam::new(0.001), Loss::sparse_categorical_crossentropy(true), &["accuracy"])?;
    print!("{}", model.summary());

    let history = model.fit(
        &train.x,
        &train.y,
        FitOptions { epochs: 10, batch_size: 32, validation_split: 0.1, ..Default::default() },
    )?;
    let held_out = model.evaluate(&test.x, &test.y, 32)?;
    println!(
        "final training accuracy {:.4}; held-out: {}",
        history.last("accuracy").unwrap_or(f64::NAN),
        held_out.format()
    );
    Ok(())
}
