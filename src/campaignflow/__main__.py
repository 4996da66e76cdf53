from campaignflow.cli import main

main()
