//! One file per optimizer rule. Each holds the hyperparameters (Keras's names and
//! defaults), the update written out as math in its doc comment, its state and checks;
//! its fused kernel is in `tensor/kernels/optim/` under the same name, launched through
//! the backend (`B::optimizer_step`).

/// `Rule::new(lr)` → a ready optimizer, and builder methods for each hyperparameter.
macro_rules! optimizer_api {
    ($rule:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        impl $rule {
            /// This optimizer with the given learning rate and default hyperparameters.
            pub fn new(learning_rate: f32) -> $crate::optim::Configured<$rule> {
                $crate::optim::Configured::with_options(
                    $rule::default(),
                    $crate::optim::Options { learning_rate: Some(learning_rate.into()), ..Default::default() },
                )
            }
        }
        impl $crate::optim::Configured<$rule> {
            $(
                pub fn $field(mut self, value: $ty) -> Self {
                    self.rule.$field = value;
                    self
                }
            )*
        }
    };
}

mod adadelta;
mod adafactor;
mod adagrad;
mod adam;
mod adamax;
mod ftrl;
mod lamb;
mod lars;
mod lion;
mod muon;
mod nadam;
mod radam;
mod rmsprop;
mod rprop;
mod schedule_free;
mod sgd;

pub use adadelta::Adadelta;
pub use adafactor::Adafactor;
pub use adagrad::Adagrad;
pub use adam::Adam;
pub(crate) use crate::tensor::kernels::optim::adam::adam_alpha as adam_alpha_for_chain;
pub use adamax::Adamax;
pub use ftrl::Ftrl;
pub use lamb::Lamb;
pub use lars::Lars;
pub use lion::Lion;
pub use muon::Muon;
pub use nadam::Nadam;
pub use radam::RAdam;
pub use rmsprop::RmsProp;
pub use rprop::Rprop;
pub use schedule_free::ScheduleFreeAdamW;
pub use sgd::Sgd;

