from feedback_cli.app import main

main()
