from edgetl.cli.app import main

main()
