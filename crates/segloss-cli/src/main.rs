//! The `segloss` command: `info`, `check`, `bench`, `selftest`.

mod bench;
mod check;
mod info;
mod selftest;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "segloss", version, about = "Segmentation losses and their gradients on the GPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Adapters found, the one chosen, its features and limits.
    Info,
    /// Runs golden cases through the float64 reference and the GPU.
    Check {
        /// A folder of golden case files.
        dir: std::path::PathBuf,
        /// Only these losses (comma-separated SPEC.md names).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Check the float64 reference alone, without a GPU.
        #[arg(long)]
        cpu_only: bool,
        /// Round the floating inputs to f16 or bf16 (the gradient written in
        /// it too) and hold the GPU to the reference on the rounded inputs.
        #[arg(long, value_parser = parse_dtype, conflicts_with = "cpu_only")]
        dtype: Option<segloss::DType>,
        /// Run each case as K data-parallel devices would: the batch split
        /// into min(K, N) slices, their statistics added, each slice
        /// finished with the sums, the gradients put back together.
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..), conflicts_with_all = ["cpu_only", "dtype"])]
        shards: Option<u32>,
    },
    /// Times each implemented loss on the anchor workloads.
    Bench(bench::Args),
    /// Every implemented loss on random inputs, GPU against the float64 reference.
    Selftest {
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info::run(),
        Command::Check { dir, only, cpu_only, dtype, shards } => check::run(&dir, &only, cpu_only, dtype, shards.map(|k| k as usize)),
        Command::Bench(args) => bench::run(&args),
        Command::Selftest { seed } => selftest::run(seed),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("segloss: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_dtype(name: &str) -> Result<segloss::DType, String> {
    segloss::DType::from_name(name).map_err(|e| e.to_string())
}
