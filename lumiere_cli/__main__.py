from lumiere_cli.cli import main

main()
