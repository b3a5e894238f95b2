"""What the bot sees of the AI workflows themselves: runs, their minute tallies, their figures."""
