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
//! epochs); then a model with two outputs (Keras's `Model(x, [digit, big])` compiled with
//! `loss=[…], loss_weights=[1, 0.5]`): the digit, and whether it is 5–9. The first graph
//! in TOML: examples/residual.toml. Run from the repository root:
//!
//!     cargo run --release -p descent --example functional

use descent::data::{read_csv, CsvOptions, Dataset, LabelColumn, Preprocessing};
use descent::nn::{Activation, Add, Call, Concatenate, Dense, Input, Loss};
use descent::train::Model;
use descent::optim::Adam;
use descent::tensor::Tensor;
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

    // Two heads on one trunk, each with its loss; the trained loss is digit + 0.5·big.
    let is_big = |y: &Tensor| Tensor::new(y.data().iter().map(|c| (*c >= 5.0) as u8 as f32).collect(), &[y.rows(), 1]);
    let (big_train, big_test) = (is_big(&train.y)?, is_big(&test.y)?);
    let x = Input::named("pixels", &[64]);
    let h = Dense::new(64, Activation::Relu).call(&x)?;
    let digit = Dense::new(10, Activation::Linear).name("digit").call(&h)?;
    let big = Dense::new(1, Activation::Linear).name("big").call(&h)?;
    let mut heads = Model::new(&[x], &[digit, big])?.with_name("two_heads");
    let losses = [Loss::sparse_categorical_crossentropy(true), Loss::binary_crossentropy(true)];
    heads.compile_outputs(Adam::new(0.001), &losses, &[1.0, 0.5], &["accuracy"])?;
    heads.fit_outputs(&[&train.x], &[&train.y, &big_train], FitOptions { epochs: 10, batch_size: 32, ..Default::default() })?;
    let held_out = heads.evaluate_outputs(&[&test.x], &[&test.y, &big_test], 32)?;
    println!("two heads, held-out: {}", held_out.format());
    Ok(())
}
