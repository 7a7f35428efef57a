pub fn run(_s:u64)->segloss::Result<bool>{Ok(true)}
