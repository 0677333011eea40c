from bridgescale.cli import main

main()
