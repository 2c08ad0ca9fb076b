//! S11 placeholder.
use crate::Ctx;
use crate::report::Section;
/// Runs S11.
pub async fn run(_ctx: &Ctx) -> anyhow::Result<Section> {
    anyhow::bail!("todo")
}
