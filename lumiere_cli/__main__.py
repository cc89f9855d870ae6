from lumiere_cli.entry import main

main()
