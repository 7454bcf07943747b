from loader.cli import main

if __name__ == "__main__":  # not when a --processes writer is spawned
    main()
