const name = process.argv[2];
console.log(`creating ${name}`);
