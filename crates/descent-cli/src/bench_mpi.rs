//! `descent bench mpi` (feature `mpi`): what data-parallel training costs.
//!
//! - The gradient sum itself: descent's bucket reduction (all-to-all, rank-ordered
//!   add, all-gather) against a raw `MPI_Allreduce` of the same bytes, alternating, as
//!   bus bandwidth (algorithm bandwidth · 2(N−1)/N, the figure NCCL and OSU report).
//! - W1 (the classic model's shape) and W2 at N = 1, 2, 4 ranks: time per step, split
//!   into computing and waiting on communication (the group's own clock).
//!
//! The parent runs `mpirun -np N descent bench-child mpi` for each N (one kernel thread
//! per rank when the ranks fill the cores); rank 0 prints one JSON line.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use descent::data::teacher_classification;
use descent::distributed::Communicator;
use descent::train::FitOptions;
use descent::{Error, Result};

use crate::bench_mlp::{median, mlp_model, mlp_workload, run_json};
use crate::mpi_group::MpiGroup;

/// Gradient sizes timed, in bytes: W1's whole gradient is 28 KB, W2's 7.4 MB.
const SIZES: [usize; 5] = [32 << 10, 256 << 10, 1 << 20, 8 << 20, 32 << 20];

/// The child, under `mpirun`: the all-reduce table (N > 1), then both workloads.
pub fn child(group: &mut MpiGroup) -> Result<()> {
    let n = group.size();
    let mut allreduce = Vec::new();
    if n > 1 {
        for (i, &bytes) in SIZES.iter().enumerate() {
            let floats = bytes / 4;
            let data: Vec<f32> = (0..floats).map(|k| (group.rank() + 1) as f32 + (k % 7) as f32).collect();
            let (mut ours, mut raw) = (vec![0.0f32; floats], vec![0.0f32; floats]);
            let reps = (256 << 20) / bytes.max(1);
            let reps = reps.clamp(5, 200);
            let (mut t_ours, mut t_raw) = (Vec::new(), Vec::new());
            // Bucket ids of their own, so the buffers are sized once per size.
            let bucket = 1000 + i;
            for rep in 0..reps + 2 {
                // Alternate which goes first, so neither always meets a warm cache.
                for which in if rep % 2 == 0 { [0, 1] } else { [1, 0] } {
                    group.barrier();
                    let t = Instant::now();
                    if which == 0 {
                        ours.copy_from_slice(&data);
                        let copied = t.elapsed();
                        group.sum_in_place(bucket, &mut ours, 1.0);
                        // Only the sum is timed (MPI_Allreduce reads `data` in place too).
                        let s = t.elapsed() - copied;
                        if rep >= 2 {
                            t_ours.push(s.as_secs_f64());
                        }
                        continue;
                    } else {
                        group.raw_all_reduce(&data, &mut raw);
                    }
                    let s = t.elapsed().as_secs_f64();
                    // The first two rounds warm up (buffers, connections).
                    if rep >= 2 {
                        if which == 0 { t_ours.push(s) } else { t_raw.push(s) }
                    }
                }
            }
            if ours != raw {
                return Err(Error::State(format!("all-reduce of {bytes} bytes: descent's sum differs from MPI_Allreduce's")));
            }
            // Every rank's median is close; take the slowest rank's (a collective
            // ends when its last rank does).
            let mut meds = [median(t_ours), median(t_raw)];
            for m in &mut meds {
                let all = group.gather_all(&m.to_le_bytes());
                *m = all.iter().map(|b| f64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))).fold(0.0, f64::max);
            }
            let bus = |s: f64| bytes as f64 / s * 2.0 * (n - 1) as f64 / n as f64 / 1e9;
            allreduce.push(serde_json::json!({
                "bytes": bytes, "descent_s": meds[0], "mpi_allreduce_s": meds[1],
                "descent_busbw_gbs": bus(meds[0]), "mpi_busbw_gbs": bus(meds[1]), "overhead": meds[0] / meds[1] - 1.0,
            }));
        }
    }
    let mut workloads = Vec::new();
    for name in ["w1", "w2"] {
        let (spec, features, hidden, batch, _) = mlp_workload(name)?;
        let (train, test) = teacher_classification(&spec, 60_000, 10_000, 0)?;
        let mut model = mlp_model(features, hidden)?;
        fn options(group: &mut MpiGroup, batch: usize) -> FitOptions<'_> {
            FitOptions { epochs: 1, batch_size: batch, verbose: 0, data_parallel: Some(group as &mut dyn Communicator), ..Default::default() }
        }
        // A warm-up epoch, then the timed one.
        model.fit(&train.x, &train.y, options(group, batch))?;
        let before = group.seconds;
        let t = Instant::now();
        model.fit(&train.x, &train.y, options(group, batch))?;
        let seconds = t.elapsed().as_secs_f64();
        let waited = group.seconds - before;
        let steps = train.len().div_ceil(batch) as f64;
        let acc = model.evaluate(&test.x, &test.y, 1024)?.get("accuracy").unwrap_or(f64::NAN);
        let params = model.params().count();
        workloads.push(serde_json::json!({
            "workload": name, "ranks": n, "threads_per_rank": rayon::current_num_threads(), "global_batch": batch,
            "step_ms": seconds / steps * 1e3, "comm_ms_per_step": waited / steps * 1e3, "compute_ms_per_step": (seconds - waited) / steps * 1e3,
            "samples_per_s": train.len() as f64 / seconds, "gradient_bytes": params * 4, "test_accuracy": acc,
        }));
    }
    if group.rank() == 0 {
        println!("{}", serde_json::json!({ "ranks": n, "allreduce": allreduce, "workloads": workloads }));
    }
    Ok(())
}

/// The parent: one `mpirun` per N, the tables on stdout and the JSON in `out_dir`.
pub fn run(rounds: usize, out_dir: &Path) -> Result<()> {
    let me = std::env::current_exe().map_err(|e| Error::State(e.to_string()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results: Vec<Vec<serde_json::Value>> = vec![Vec::new(); 3];
    for round in 0..rounds.max(1) {
        eprintln!("round {}/{rounds}", round + 1);
        for (k, n) in [1usize, 2, 4].into_iter().enumerate() {
            let mut cmd = Command::new("mpirun");
            // No binding: mpirun would pin each rank to one core (its default for 2 ranks
            // or fewer), and a rank with two threads would run them on one core.
            cmd.args(["--oversubscribe", "--bind-to", "none", "-np", &n.to_string()]).arg(&me).args(["bench-child", "mpi"]);
            cmd.env("RAYON_NUM_THREADS", (cores / n).max(1).to_string());
            results[k].push(run_json(&mut cmd, &format!("mpirun -np {n} descent bench-child mpi"))?);
        }
    }
    let mut md = String::from("All-reduce (sum of f32), median over repetitions, slowest rank:\n\n| ranks | bytes | descent | MPI_Allreduce | descent bus GB/s | MPI bus GB/s | descent vs MPI |\n|---|---|---|---|---|---|---|\n");
    for runs in &results[1..] {
        let first = &runs[0];
        for (i, row) in first["allreduce"].as_array().into_iter().flatten().enumerate() {
            let col = |key: &str| median(runs.iter().filter_map(|r| r["allreduce"][i][key].as_f64()).collect());
            md += &format!(
                "| {} | {} | {:.1} µs | {:.1} µs | {:.2} | {:.2} | {:+.1}% |\n",
                first["ranks"],
                row["bytes"],
                col("descent_s") * 1e6,
                col("mpi_allreduce_s") * 1e6,
                col("descent_busbw_gbs"),
                col("mpi_busbw_gbs"),
                (col("descent_s") / col("mpi_allreduce_s") - 1.0) * 100.0
            );
        }
    }
    md += "\nTraining, one epoch of 60,000 samples (second epoch), medians:\n\n| workload | ranks | threads/rank | ms/step | compute ms | communication ms | comm share | samples/s | held-out acc |\n|---|---|---|---|---|---|---|---|---|\n";
    for w in 0..2 {
        for runs in &results {
            let col = |key: &str| median(runs.iter().filter_map(|r| r["workloads"][w][key].as_f64()).collect());
            let first = &runs[0]["workloads"][w];
            md += &format!(
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.1}% | {:.0} | {:.4} |\n",
                first["workload"].as_str().unwrap_or("?"),
                first["ranks"],
                first["threads_per_rank"],
                col("step_ms"),
                col("compute_ms_per_step"),
                col("comm_ms_per_step"),
                col("comm_ms_per_step") / col("step_ms") * 100.0,
                col("samples_per_s"),
                col("test_accuracy")
            );
        }
    }
    println!("{md}");
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let path = out_dir.join("mpi.json");
    descent::io::write_atomic(&path, serde_json::to_string_pretty(&results).unwrap_or_default().as_bytes())?;
    descent::io::write_atomic(out_dir.join("mpi.md"), md.as_bytes())?;
    eprintln!("wrote {} and mpi.md", path.display());
    Ok(())
}
