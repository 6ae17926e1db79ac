// SPDX-License-Identifier: GPL-2.0
//! Placeholder until the real module lands (owned by another engineer).

use crate::cli::TestArgs;
use crate::paths::Ctx;

pub fn run(_: &Ctx, _: &TestArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented")
}
