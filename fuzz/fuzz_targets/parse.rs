//! Any bytes given as a Dockerfile: parsing, planning, printing and step-by-step expansion
//! must return values or diagnostics, never panic.
#![no_main]

use cairn::frontend::{self, BuildOptions, Platform};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    let file = Path::new("Dockerfile");
    let Ok(df) = frontend::parse(&src, file) else { return };
    let opts = BuildOptions {
        build_platform: Platform::parse("linux/amd64").expect("valid platform"),
        ..BuildOptions::default()
    };
    let Ok(plan) = frontend::plan(&df, &opts) else { return };
    let _ = cairn::cli::parse::to_json(&df, &plan).to_string();
    let _ = cairn::cli::parse::to_text(&df, &plan);
    for stage in &plan.stages {
        let mut scope = plan.scope(&["PATH=/usr/bin".to_owned()]);
        for step in &stage.steps {
            match step.instruction.expand(&scope) {
                Ok(inst) => scope.apply(&inst),
                Err(e) => {
                    let _ = step.error(&df, e.to_string()).to_string();
                }
            }
            if let frontend::Instruction::Run(r) = &step.instruction {
                let _ = r.script();
                let _ = r.shebang_heredoc();
            }
        }
        let _ = scope.image_env();
        let _ = scope.run_env();
    }
});
