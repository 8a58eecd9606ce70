"""Twin of the sample-transfer robot: stations, gripper, jobs in virtual time, interlocks."""
