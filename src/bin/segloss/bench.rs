pub fn run(_:&Args)->segloss::Result<bool>{Ok(true)} #[derive(clap::Args)] pub struct Args{}
