// SPDX-License-Identifier: GPL-2.0
//! Placeholder until the real module lands (owned by another engineer).

use crate::cli::BenchArgs;
use crate::paths::Ctx;

pub fn run(_: &Ctx, _: &BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented")
}
