from ghga_tasks.cli import main

main()
