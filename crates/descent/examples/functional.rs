//! A functional model in Rust, as Keras writes it:
//!
//!     x = keras.Input(shape=(64,))
//!     h = Dense(64, activation="relu")(x)
//!     r = Dense(64, activation="relu")(h)
//!     s = keras.layers.Add()([h, r])                # residual connection
//!     wide = Dense(16, activation="relu")(x)        # a second branch from the input
//!     y = Dense(10)(keras.layers.Concatenate()([s, wide]))
//!     model = keras.Model(x, y)
//!
//! trained on the bundled digits with the classic recipe (Adam 0.001, batch 32, 10
//! epochs). The same graph in TOML: examples/residual.toml. Run from the repository root:
//!
//!     cargo run --release -p descent --example functional

use descent::data::{read_csv, CsvOptions, Dataset, LabelColumn, Preprocessing};
use descent::nn::{Activation, Add, Call, Concatenate, Dense, Input, Loss};
use descent::train::Model;
use descent::optim::Adam;
use descent::train::FitOptions;

fn main() -> descent::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let options = CsvOptions { label_column: Some(LabelColumn::Name("label".into())), ..Default::default() };
    let (x, y) = read_csv(path, &options)?;
    let data = Dataset::new(x, y.expect("label column"), "digits.csv")?;
    let (mut train, mut test) = data.train_test_split(0.2, 42)?;
    let prep = Preprocessing::fit(None, true, &train.x);
    prep.apply(&mut train.x)?;
    prep.apply(&mut test.x)?;

    let x = Input::named("pixels", &[64]);
    let h = Dense::new(64, Activation::Relu).call(&x)?;
    let r = Dense::new(64, Activation::Relu).call(&h)?;
    let s = Add::new().call_on(&[&h, &r])?;
    let wide = Dense::new(16, Activation::Relu).call(&x)?;
    let joined = Concatenate::new().call_on(&[&s, &wide])?;
    let y = Dense::new(10, Activation::Linear).call(&joined)?;
    let mut model = Model::new(&[x], &[y])?.with_name("residual_two_branch");

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
