// @peculiar/x509 resolves its ASN.1 schemas through tsyringe, which needs the Reflect metadata
// polyfill loaded first; every Moat module imports the library through this file.
import 'reflect-metadata';

export * from '@peculiar/x509';
