from mmsearch.cli import main

main()
