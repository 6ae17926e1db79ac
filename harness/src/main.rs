// SPDX-License-Identifier: GPL-2.0
//! uml-harness: builds, boots, tests and benchmarks UML kernels with the C and the Rust
//! host layer. See `uml-harness --help`.

mod archive;
mod bench;
mod bench_block;
mod bench_net;
mod block;
mod boot;
mod build_selftest;
mod chan;
mod chan_helper;
mod cli;
mod fuzz;
mod hostcheck;
mod hostfs;
mod initramfs;
mod iperf;
mod kbuild;
mod kernel_src;
mod kunit;
mod mconsole;
mod net;
mod net_l2tp;
mod paths;
mod physmem;
mod protocol;
mod rtcdog;
mod setup;
mod signals;
mod suite;
mod sys;
mod teardown;
mod verify_link;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};
use paths::Ctx;

fn real_main() -> Result<i32> {
    let cli = Cli::parse();
    signals::install()?;
    // Needs no repository, cache or kernel.
    if let Command::Hostcheck = cli.command {
        return Ok(hostcheck::run());
    }
    let ctx = Ctx::resolve(cli.cache, cli.kernel_src)?;
    match cli.command {
        Command::Setup(a) => setup::run(&ctx, &a)?,
        Command::Build(a) => kbuild::run(&ctx, &a)?,
        Command::Run(a) => return boot::run(&ctx, &a),
        Command::VerifyLink(a) => verify_link::run(&ctx, &a)?,
        Command::Initramfs => initramfs::run(&ctx)?,
        Command::AbiGuardSelftest => build_selftest::selftest(&ctx, &build_selftest::ABI_GUARD)?,
        Command::StubCheckSelftest => build_selftest::selftest(&ctx, &build_selftest::STUB_CHECK)?,
        Command::Hostcheck => unreachable!("handled above"),
        Command::Test(a) => suite::run(&ctx, &a)?,
        Command::Kunit(a) => kunit::run(&ctx, &a)?,
        Command::Bench(mut a) => {
            if a.json.as_os_str().is_empty() {
                a.json = ctx.cache.join("bench.json");
            }
            bench::run(&ctx, &a)?
        }
        Command::BenchBlock(a) => bench_block::run(&ctx, &a)?,
        Command::BenchNet(a) => bench_net::run(&ctx, &a)?,
        Command::Fuzz(a) => return fuzz::run(&ctx, &a),
        Command::Demo(mut a) => {
            if a.json.as_os_str().is_empty() {
                a.json = ctx.cache.join("bench.json");
            }
            demo(&ctx, &a)?
        }
    }
    Ok(0)
}

/// The README's main job, step by step, each step announced.
fn demo(ctx: &Ctx, bench_args: &cli::BenchArgs) -> Result<()> {
    println!("== setup");
    setup::run(ctx, &cli::SetupArgs { check_only: false })?;
    for os in ["c", "rust"] {
        println!("== build --os {os}");
        kbuild::build(ctx, os, None)?;
    }
    // verify-link, test and bench must see the tree the builds used.
    println!("== verify-link --os rust");
    verify_link::run(ctx, &cli::VerifyLinkArgs { os: "rust".into() })?;
    println!("== test --os rust");
    suite::run(
        ctx,
        &cli::TestArgs {
            os: vec!["rust".into()],
            only: Vec::new(),
        },
    )?;
    println!("== bench");
    bench::run(ctx, bench_args)
}

fn main() -> ExitCode {
    // The stand-in terminal emulator of the xterm channel case.
    if chan_helper::is_standin() {
        return ExitCode::from(chan_helper::standin_main());
    }
    match real_main() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            if let Some(sig) = signals::interrupted() {
                eprintln!("uml-harness: interrupted (signal {sig})");
                return ExitCode::from(u8::try_from(128 + sig).unwrap_or(255));
            }
            eprintln!("uml-harness: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
