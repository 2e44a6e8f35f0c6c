use std::process::ExitCode;

fn main() -> ExitCode {
    tomtat::cli::main()
}
