from claude_proxy.cli import main

main()
