//! Tuning for descent: k-fold cross-validation, hyperparameter search (grid, random,
//! TPE samplers; median, successive-halving and Hyperband pruners) with every trial
//! kept in an SQLite study file, and side-by-side comparison of configurations with
//! a paired significance test.
//!
//! A separate crate so the core library stays lean: SQLite is compiled in here only.

pub mod compare;
pub mod db;
pub mod cv;
pub mod folds;
mod live;
pub mod pruner;
pub mod report;
pub mod sampler;
pub mod space;
pub mod stats;
pub mod store;
pub mod study;
pub mod study_file;
pub mod trial;

pub use cv::{cross_validate, CvReport, FoldResult};
pub use folds::{Fold, FoldSpec};
pub use pruner::{HyperbandPruner, MedianPruner, NoPruner, Pruner, SuccessiveHalvingPruner};
pub use sampler::{GridSampler, RandomSampler, Sampler, TpeSampler};
pub use space::{Distribution, ParamSpec, ParamValue, Params, Space};
pub use store::{Store, StudyInfo};
pub use study::{Study, StudyOptions, Trial, TrialError};
pub use trial::{Direction, TrialRecord, TrialState};
