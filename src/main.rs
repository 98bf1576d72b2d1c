fn main() -> std::process::ExitCode {
    mailpass::main()
}
