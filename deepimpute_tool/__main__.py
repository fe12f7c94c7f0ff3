from deepimpute_tool.cli import main

main()
